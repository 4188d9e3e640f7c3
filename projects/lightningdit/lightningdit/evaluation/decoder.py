"""The frozen VAE that turns generated (normalised) latents back into images."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..datasets.normalization import LatentNormalizer


class FrozenLatentDecoder(nn.Module):
    """Denormalise DiT samples with the latent statistics, decode them with a frozen VAE, map to ``[0, 1]``.

    Any registered VAE with ``decode(z) -> (B, 3, H, W)`` in ``[-1, 1]`` works (TransVAE, CNN-VAE, ViT/Swin-VAE,
    the diffusers adapter); build it from a config with :meth:`from_config`.

    Args:
        vae: the autoencoder (put in eval mode, gradients off).
        normalizer: the statistics the DiT was trained with (``None``: latents are not normalised).
    """

    def __init__(self, vae: nn.Module, normalizer: LatentNormalizer | None) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.normalizer = normalizer

    @classmethod
    def from_config(cls, config: str, checkpoint: str | None, latent_dir: str | None = None,
                    latent_multiplier: float = 1.0, device: str | torch.device = 'cpu',
                    preset: str | None = None) -> 'FrozenLatentDecoder':
        """Load the VAE of ``config`` (``checkpoint`` ``None`` / ``'none'``: a model that loads its own weights, e.g.
        the diffusers adapter) and the statistics stored in ``latent_dir`` (validated, with the VAE's channel count;
        either folder layout, :mod:`transvae.utils.latent_folders`).

        Latents of another VAE are refused: the VAE recorded in ``latent_dir``'s provenance (checkpoint sha256,
        model config fingerprint) must be this one (:func:`transvae.apis.latents.check_latents_vae`, an error naming
        both); a folder without provenance (an official LightningDiT folder) is used with a warning.

        The checkpoint is read with ``weights_only=True`` unless the enclosing
        :func:`~transvae.engine.checkpoint_io.trusted_checkpoints` block (the tools' ``--trust-checkpoint``) allows
        more; a VAE with a NaN / Inf weight is refused (it would decode every sample to black).
        """
        from transvae.apis import init_model
        from transvae.engine.checkpoint_io import load_weights
        ckpt = None if checkpoint in (None, '', 'none', 'None') else checkpoint
        vae = init_model(config, None, device='cpu', preset=preset)
        if ckpt is not None:  # trusted=None: the tool's --trust-checkpoint (trusted_checkpoints) decides
            load_weights(vae, ckpt, config_name=str(config), allow_partial=False,
                         tool_hint='the VAE of the DiT evaluation: vae_config={config!r}, vae_checkpoint={ckpt!r}')
        bad = [n for n, t in list(vae.named_parameters()) + list(vae.named_buffers())
               if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            raise ValueError(f'VAE checkpoint {checkpoint}: {len(bad)} weight tensor(s) are not finite (NaN / Inf), '
                             f'first {bad[0]!r}: every decoded sample would be black')
        if latent_dir:
            from transvae.apis.latents import check_latents_vae
            from transvae.utils.latent_folders import layout_of
            checked = check_latents_vae(latent_dir, vae.cfg, ckpt, config_name=str(config),
                                        provenance=layout_of(latent_dir).provenance(latent_dir))
            if not checked:
                warnings.warn(f'{latent_dir} records no provenance (an official LightningDiT folder?): cannot check '
                              f'that its latents come from the VAE {config} / {checkpoint}')
        channels = getattr(vae, 'latent_channels', None)
        norm = LatentNormalizer.from_dir(latent_dir, latent_multiplier,
                                         num_channels=int(channels) if isinstance(channels, int) else None) \
            if latent_dir else None
        return cls(vae.to(device).eval(), norm)

    def train(self, mode: bool = True) -> 'FrozenLatentDecoder':
        return super().train(False)

    @torch.no_grad()
    def forward(self, z: Tensor, chunk_size: int = 16) -> Tensor:
        """``(B, C, h, w)`` normalised latents -> ``(B, 3, H, W)`` float images in ``[0, 1]``."""
        device = next(self.vae.parameters()).device
        bad = ~torch.isfinite(z.reshape(z.shape[0], -1)).all(dim=1)
        if bool(bad.any()):
            raise ValueError(f'{int(bad.sum())} of {z.shape[0]} generated latents are not finite (NaN / Inf; first: '
                             f'row {int(bad.nonzero()[0])}): the DiT weights or the sampling settings (guidance scale, '
                             'sampler) diverged; refusing to decode them (they would be black images)')
        out = []
        for chunk in torch.split(z, chunk_size):
            chunk = chunk.to(device).float()
            if self.normalizer is not None:
                chunk = self.normalizer.denormalize(chunk)
            img = self.vae.decode(chunk).float()
            if not bool(torch.isfinite(img).all()):
                raise ValueError('the VAE decoded finite latents to non-finite images (NaN / Inf): refusing them '
                                 '(they would be black images in the FID)')
            out.append(((img.clamp(-1, 1) + 1) / 2).cpu())
        return torch.cat(out)
