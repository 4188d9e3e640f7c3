"""The full training recipe: VAE + VF loss (stage 1) and + PatchGAN with a frozen encoder (stage 2).

PAPER.md §3.1 C: stage 1 trains encoder and decoder with L1 + LPIPS + KL + VF; stage 2 freezes the encoder and
fine-tunes the decoder with the GAN added. :class:`VAEGAN` owns ``train_step`` and drives two optimizers from an
``OptimWrapperDict`` (``generator``, ``discriminator``; see :class:`~transvae.engine.optimizers.
VAEGANOptimWrapperConstructor`):

1. G step: ``loss_nll + loss_kl [+ loss_vf] [+ loss_g]`` -> ``generator`` update. The discriminator is called
   unwrapped with ``requires_grad`` off, so no gradient lands on it and its DDP reducer is not involved.
2. D step (only once the GAN is active, iteration >= ``disc_start``): hinge loss on the real images and the
   *detached* reconstructions -> ``discriminator`` update. Before ``disc_start`` the D step is skipped (the
   discriminator is bit-identical) and the G term has factor 0 (it is not even computed).

With ``freeze_encoder=True`` (stage 2) the encoder is frozen in ``__init__`` (``requires_grad_(False)``, always
``eval()``, encoded under ``no_grad``). KL and VF then give no gradient to any trained weight: ``loss_kl`` is still
reported (a constant), the VF loss (and its projection, frozen) is skipped. Without ``discriminator`` and
``vf_loss`` the model behaves like :class:`VAE`.

EMA for evaluation: ``custom_hooks = [dict(type='TransVAEEMAHook', momentum=1e-4)]`` (decay 0.9999; ``TransVAERunner``
refuses mmengine's plain ``EMAHook``): it swaps the averaged weights in before validation / testing and saves them in
the checkpoint (``ema_state_dict``), with :class:`~transvae.models.averaged_model.TrainableEMA`: only
the trainable generator weights are averaged (the discriminator, the frozen encoder and the hidden LPIPS / foundation
networks are shared, not copied), which also keeps the EMA keys right under ``MMSeparateDistributedDataParallel``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ClassVar, Iterator

import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor, nn

from transvae.registry import MODELS

from ..distributions import DiagonalGaussian
from ..losses.gan_loss import current_iter
from ..utils.unwrap import unwrap_model
from .vae import VAE, pad_to_multiple

__all__ = ['VAEGAN']


@contextmanager
def _no_param_grad(module: nn.Module) -> Iterator[None]:
    """Temporarily set ``requires_grad=False`` on ``module``'s parameters (restored afterwards)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@MODELS.register_module()
class VAEGAN(VAE):
    """:class:`VAE` with the VF loss, a PatchGAN discriminator and a frozen-encoder stage.

    Args:
        *args, **kwargs: :class:`VAE` arguments (``encoder``, ``decoder``, ``arch``, ``rec_loss``, ``kl_loss`` ...).
        discriminator: a registered discriminator (``PatchGANDiscriminator``); ``None`` = no GAN (stage 1).
        vf_loss: ``VFLoss`` config (``in_channels`` is injected); ``None`` = no VF loss.
        gan_loss: ``HingeGANLoss`` config (default ``dict(type='HingeGANLoss')``); ``disc_start`` is injected.
        disc_start: first iteration of the GAN (G term and D updates); 0 in stage 2.
        freeze_encoder: stage 2: freeze the encoder.

    Loss keys (summed by mmengine): ``loss_nll``, ``loss_kl``, ``loss_vf``, ``loss_g`` (G step), ``loss_d``
    (D step, reported separately; ``loss`` is the G total). Logged-only: ``l1``, ``lpips``, ``logvar``, ``kl``,
    ``vf_<tag>``, ``vf_mcos``, ``vf_mdms``, ``vf_weight``, ``g_raw``, ``g_weight``, ``d_real``, ``d_fake``.
    """

    train_only_modules: ClassVar[tuple[str, ...]] = ('vf_loss', 'discriminator', 'gan_loss')
    """The VF loss (its foundation network), the discriminator and the GAN loss: training only (see :class:`VAE`)."""

    def __init__(self, *args: Any, discriminator: dict | None = None, vf_loss: dict | None = None,
                 gan_loss: dict | None = None, disc_start: int = 0, freeze_encoder: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vf_loss = (MODELS.build(vf_loss, default_args=dict(in_channels=self.latent_channels))
                        if vf_loss is not None else None)
        self.discriminator = MODELS.build(discriminator) if discriminator is not None else None
        self.gan_loss = None
        if self.discriminator is not None:
            gan_loss = dict(gan_loss or dict(type='HingeGANLoss'))
            if 'disc_start' in gan_loss and gan_loss['disc_start'] != disc_start:
                raise ValueError(f'gan_loss.disc_start={gan_loss["disc_start"]} != disc_start={disc_start}: set '
                                 'only VAEGAN.disc_start')
            gan_loss['disc_start'] = disc_start
            self.gan_loss = MODELS.build(gan_loss)
        self.disc_start = disc_start
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
            if self.vf_loss is not None:  # no gradient reaches the encoder: the VF loss is skipped in stage 2
                self.vf_loss.requires_grad_(False)

    # ------------------------------------------------------------------ wrapper-safe accessors
    # Under MMSeparateDistributedDataParallel the trainable submodules are DDP wrappers: reach attributes through
    # `unwrap_model`, call forwards through the wrappers (so gradients are synchronised).
    @property
    def latent_channels(self) -> int:
        return unwrap_model(self.encoder).latent_channels

    @property
    def downsample_factor(self) -> int:
        return unwrap_model(self.encoder).downsample_factor

    def get_last_layer(self) -> nn.Parameter:
        """The decoder's final conv weight (GAN adaptive weight)."""
        return unwrap_model(self.decoder).get_last_layer()

    def get_encoder_last_layer(self) -> nn.Parameter:
        """The encoder's latent out-projection weight (VF adaptive weight)."""
        return unwrap_model(self.encoder).get_last_layer()

    def train(self, mode: bool = True) -> 'VAEGAN':
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def encode(self, x: Tensor) -> DiagonalGaussian:
        if self.freeze_encoder:
            with torch.no_grad():
                return super().encode(x)
        return super().encode(x)

    # ------------------------------------------------------------------ losses
    def gan_active(self, it: int | None = None) -> bool:
        """Whether the GAN (G term, D step) is on at iteration ``it`` (default: the MessageHub's)."""
        return self.gan_loss is not None and self.gan_loss.active(it)

    def generator_losses(self, inputs: Tensor, it: int | None = None) -> tuple[dict[str, Tensor], Tensor]:
        """G-step losses and logs of a batch ``(B, 3, H, W)`` in ``[-1, 1]``, and the reconstructions."""
        it = current_iter() if it is None else it
        posterior = self.encode(inputs)
        z = posterior.sample() if self.sample_posterior else posterior.mode()
        recons = self.decode(z, out_size=inputs.shape[-2:])
        nll, logs = self.rec_loss(inputs, recons)
        losses: dict[str, Tensor] = {'loss_nll': nll, 'loss_kl': self.kl_loss(posterior)}
        if self.vf_loss is not None and not self.freeze_encoder:
            x, _ = pad_to_multiple(inputs, self.downsample_factor)  # features of the image the latent encodes
            loss_vf, vf_logs = self.vf_loss(z, x, nll=nll, last_layer=self.get_encoder_last_layer())
            losses['loss_vf'] = loss_vf
            logs.update(vf_logs)
        if self.gan_active(it):
            disc = unwrap_model(self.discriminator)
            with _no_param_grad(disc):
                logits_fake = disc(recons)
            loss_g, g_logs = self.gan_loss.generator_loss(logits_fake, nll=nll, last_layer=self.get_last_layer(),
                                                          it=it)
            losses['loss_g'] = loss_g
            logs.update(g_logs)
        losses.update(logs)
        losses['kl'] = posterior.kl().detach().mean()
        return losses, recons

    def loss(self, inputs: Tensor) -> dict[str, Tensor]:
        """G-step losses of a batch (``forward(mode='loss')``)."""
        return self.generator_losses(inputs)[0]

    def discriminator_losses(self, inputs: Tensor, recons: Tensor, it: int | None = None) -> dict[str, Tensor]:
        """D-step loss ``loss_d`` and logs ``d_real`` / ``d_fake`` (reconstructions are detached)."""
        logits_real = self.discriminator(inputs.detach())
        logits_fake = self.discriminator(recons.detach())
        loss_d, logs = self.gan_loss.discriminator_loss(logits_real, logits_fake, it=it)
        return {'loss_d': loss_d, **logs}

    # ------------------------------------------------------------------ training
    @property
    def train_step_is_single_update(self) -> bool:
        """True when :meth:`train_step` equals ``forward(mode='loss')`` + one optimizer update (no discriminator).

        A capability flag read by the engine (e.g. the FSDP strategy, whose wrapper never calls ``train_step``).
        """
        return self.discriminator is None

    def train_step(self, data: dict | tuple | list,
                   optim_wrapper: OptimWrapper | OptimWrapperDict) -> dict[str, Tensor]:
        """One G step and (once the GAN is active) one D step.

        Args:
            data: a batch from the dataloader (pre-processed here).
            optim_wrapper: ``OptimWrapperDict`` with ``generator`` (and ``discriminator`` when the model has one),
                or a single ``OptimWrapper`` for a model without a discriminator.

        Returns:
            log variables (``loss`` = the G total; ``loss_d`` when a D step ran).
        """
        if isinstance(optim_wrapper, OptimWrapperDict):
            g_wrapper = optim_wrapper['generator']
            d_wrapper = optim_wrapper['discriminator'] if 'discriminator' in optim_wrapper.keys() else None
        else:
            g_wrapper, d_wrapper = optim_wrapper, None
        if self.discriminator is not None and d_wrapper is None:
            raise ValueError('VAEGAN with a discriminator needs an OptimWrapperDict with a `discriminator` entry '
                             '(optim_wrapper.constructor="VAEGANOptimWrapperConstructor")')
        it = current_iter()
        with g_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            inputs = data['inputs']
            losses, recons = self.generator_losses(inputs, it)
        parsed, log_vars = self.parse_losses(losses)
        g_wrapper.update_params(parsed)

        if self.gan_active(it):
            with d_wrapper.optim_context(self.discriminator):
                d_losses = self.discriminator_losses(inputs, recons, it)
            parsed_d, log_d = self.parse_losses(d_losses)
            d_wrapper.update_params(parsed_d)
            log_d.pop('loss', None)
            log_vars.update(log_d)
        return log_vars
