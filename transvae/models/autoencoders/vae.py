"""The KL-VAE model: an encoder, a diagonal Gaussian posterior, a decoder and the stage-1 losses.

The API follows diffusers' ``AutoencoderKL``: ``encode(x) -> DiagonalGaussian``, ``decode(z) -> x``. Inputs whose
size is not a multiple of the compression factor ``f`` are reflect-padded up to one and cropped back after decoding.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from mmengine.model import BaseModel
from torch import Tensor, nn

from transvae.registry import MODELS

from ..distributions import DiagonalGaussian
from .padding import pad_to_multiple
from .tiling import TilingMixin


@MODELS.register_module()
class VAE(TilingMixin, BaseModel):
    """KL-regularised autoencoder (TransVAE, CNN-VAE and the other baselines differ only in encoder / decoder).

    Args:
        encoder: a registered encoder (``(B, 3, H, W) -> (B, 2d, H/f, W/f)``).
        decoder: a registered decoder (``(B, d, h, w) -> (B, 3, f*h, f*w)``).
        arch: architecture keys shared by encoder and decoder (widths, depths, latent_channels, block_cfg, ...),
            injected into both as default arguments, so one config key changes both; keys given in ``encoder`` /
            ``decoder`` themselves take precedence.
        rec_loss: reconstruction NLL (``ReconstructionNLL``: L1 + LPIPS with a learnable log-variance).
        kl_loss: KL term (``KLLoss``, weight 1e-8 in the paper).
        data_preprocessor: defaults to ``VAEDataPreprocessor`` (uint8 -> ``[-1, 1]``).
        sample_posterior: decode a posterior sample during training (the mean otherwise).
        init_cfg: MMEngine init config.
    """

    train_only_modules: ClassVar[tuple[str, ...]] = ()
    """Constructor arguments (optional, default ``None``) that build networks only the training losses use;
    evaluation builds the model without them (``transvae.evaluation.protocol.strip_training_modules``). None here:
    ``rec_loss`` and ``kl_loss`` also give the validation losses."""

    def __init__(self, encoder: dict, decoder: dict, arch: dict | None = None, rec_loss: dict | None = None, kl_loss: dict | None = None,
                 data_preprocessor: dict | None = None, sample_posterior: bool = True,
                 init_cfg: dict | list | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='VAEDataPreprocessor'),
                         init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder, default_args=arch)
        self.decoder = MODELS.build(decoder, default_args=arch)
        if self.encoder.latent_channels != self.decoder.latent_channels:
            raise ValueError(f'encoder latent_channels={self.encoder.latent_channels} != decoder '
                             f'latent_channels={self.decoder.latent_channels}')
        if self.encoder.downsample_factor != self.decoder.upsample_factor:
            raise ValueError(f'encoder factor {self.encoder.downsample_factor} != decoder factor '
                             f'{self.decoder.upsample_factor}')
        self.rec_loss = MODELS.build(rec_loss or dict(type='ReconstructionNLL'))
        self.kl_loss = MODELS.build(kl_loss or dict(type='KLLoss'))
        self.sample_posterior = sample_posterior
        d = self.latent_channels
        # Per-channel latent statistics for normalize_latent (identity until set_latent_stats stores them: the
        # statistics of the latent folder a DiT trains on, set by `export_pretrained.py ... --latent-dir DIR`, or an
        # adapter's scaling factors); checkpointed and exported with the package.
        self.register_buffer('latent_mean', torch.zeros(d))
        self.register_buffer('latent_std', torch.ones(d))
        self.tiling = None  # TilingMixin.enable_tiling

    # ------------------------------------------------------------------ properties
    @property
    def latent_channels(self) -> int:
        return self.encoder.latent_channels

    @property
    def downsample_factor(self) -> int:
        return self.encoder.downsample_factor

    # ------------------------------------------------------------------ public API
    def encode(self, x: Tensor) -> DiagonalGaussian:
        """Posterior of images ``x`` ``(B, 3, H, W)`` in ``[-1, 1]``; latent ``(B, d, ceil(H/f), ceil(W/f))``.

        Tiled (:meth:`tiled_encode`) in eval mode after :meth:`enable_tiling`."""
        if self._use_tiling():
            return self.tiled_encode(x)
        x, _ = pad_to_multiple(x, self.downsample_factor)
        return DiagonalGaussian(self.encoder(x))

    def decode(self, z: Tensor, out_size: Sequence[int] | None = None) -> Tensor:
        """Images ``(B, 3, f*h, f*w)`` (cropped to ``out_size`` when given) from latents ``z`` ``(B, d, h, w)``.

        Tiled (:meth:`tiled_decode`) in eval mode after :meth:`enable_tiling`."""
        if self._use_tiling():
            return self.tiled_decode(z, out_size=out_size)
        x = self.decoder(z)
        if out_size is not None:
            x = x[..., :out_size[0], :out_size[1]]
        return x

    def reconstruct(self, x: Tensor, sample: bool = False) -> Tensor:
        """Encode and decode ``x`` ``(B, 3, H, W)`` in ``[-1, 1]`` (posterior mean unless ``sample``); same size out."""
        posterior = self.encode(x)
        z = posterior.sample() if sample else posterior.mode()
        return self.decode(z, out_size=x.shape[-2:])

    def normalize_latent(self, z: Tensor) -> Tensor:
        """``(z - mean) / std`` per channel, with the stored dataset statistics."""
        return (z - self.latent_mean.view(1, -1, 1, 1)) / self.latent_std.view(1, -1, 1, 1)

    def denormalize_latent(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`normalize_latent`."""
        return z * self.latent_std.view(1, -1, 1, 1) + self.latent_mean.view(1, -1, 1, 1)

    def set_latent_stats(self, mean: Tensor, std: Tensor) -> None:
        """Store per-channel latent mean / std ``(d,)`` (saved in checkpoints)."""
        self.latent_mean.copy_(mean.reshape(-1))
        self.latent_std.copy_(std.reshape(-1))

    def get_last_layer(self) -> nn.Parameter:
        """The decoder's final conv weight (for the GAN's adaptive weight)."""
        return self.decoder.get_last_layer()

    # ------------------------------------------------------------------ MMEngine
    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = 'tensor') -> Any:
        """``mode``: ``'loss'`` -> dict of losses and logs; ``'predict'`` -> list of dicts with ``pred_img`` and
        ``gt_img`` ``(3, H, W)`` in ``[0, 1]`` on the CPU; ``'tensor'`` -> reconstructions ``(B, 3, H, W)``."""
        if mode == 'loss':
            return self.loss(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.reconstruct(inputs)
        raise ValueError(f"Invalid mode '{mode}': use 'loss', 'predict' or 'tensor'")

    def loss(self, inputs: Tensor) -> dict[str, Tensor]:
        """Stage-1 losses of a batch ``(B, 3, H, W)`` in ``[-1, 1]``."""
        posterior = self.encode(inputs)
        z = posterior.sample() if self.sample_posterior else posterior.mode()
        recons = self.decode(z, out_size=inputs.shape[-2:])
        nll, logs = self.rec_loss(inputs, recons)
        losses = {'loss_nll': nll, 'loss_kl': self.kl_loss(posterior)}
        losses.update(logs)
        losses['kl'] = posterior.kl().detach().mean()
        return losses

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: list | None = None) -> list[dict]:
        """Reconstructions (tiled after :meth:`enable_tiling`) and inputs in ``[0, 1]``, cropped to ``img_shape``."""
        pred = ((self.reconstruct(inputs).float().clamp(-1, 1) + 1) / 2).cpu()
        gt = ((inputs.float().clamp(-1, 1) + 1) / 2).cpu()
        outputs = []
        for i in range(inputs.shape[0]):
            meta = dict(data_samples[i]) if data_samples is not None and i < len(data_samples) else {}
            h, w = meta.get('img_shape', pred.shape[-2:])
            meta.update(pred_img=pred[i, :, :h, :w], gt_img=gt[i, :, :h, :w])
            outputs.append(meta)
        return outputs


__all__ = ['VAE', 'pad_to_multiple']
