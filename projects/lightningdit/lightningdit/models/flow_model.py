"""The trainable unit for the Runner: a velocity network trained with a flow-matching transport on latents."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseDataPreprocessor, BaseModel
from torch import Tensor

from transvae.engine.config_validation import ConfigValueError
from transvae.registry import MODELS


@MODELS.register_module()
class LatentDataPreprocessor(BaseDataPreprocessor):
    """Stack the latents of a batch (a list of ``(C, H, W)`` tensors or one ``(B, C, H, W)`` tensor) into float32
    on the model's device; ``data_samples`` (dicts with ``label``) pass through."""

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        samples = data.get('data_samples')
        if isinstance(samples, dict):  # pseudo_collate transposes a list of dicts into a dict of lists
            samples = [dict(zip(samples, vals)) for vals in zip(*samples.values())]
        return dict(inputs=self.cast_data(inputs).float(), data_samples=samples)


def seeded_noise(shape: Sequence[int], seed: int) -> Tensor:
    """Standard normal noise of ``shape`` (CPU, float32) that depends only on ``seed``: sample ``i`` of an evaluation
    is the same on any rank and in any batch."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(int(seed)))


def labels_of(data_samples: Sequence[dict] | None, n: int, device: torch.device) -> Tensor:
    """``(B,)`` int64 labels of the data samples (``label`` key)."""
    if data_samples is None or len(data_samples) != n:
        raise ValueError(f'need one data sample with a `label` per input ({n}), got '
                         f'{None if data_samples is None else len(data_samples)}')
    try:
        return torch.tensor([int(s['label']) for s in data_samples], dtype=torch.int64, device=device)
    except KeyError:
        raise KeyError('every data sample needs a `label` (class index) for the class-conditional DiT') from None


@MODELS.register_module()
class LatentFlowModel(BaseModel):
    """Flow matching on (normalised) latents: ``loss`` mode trains, ``predict`` mode samples.

    Training (one step of :meth:`loss`): ``x1`` = data latents, ``x0 ~ N(0, I)``, ``t`` from ``timesteps``,
    ``x_t`` and the target ``u_t`` from ``path``, ``v = backbone(x_t, t, y)`` (labels dropped to the null class at
    the backbone's rate), ``loss(v, u_t)``.

    Sampling (:meth:`sample`): integrate ``guidance``'s velocity from noise with ``sampler``.

    Args:
        backbone: the velocity network (``LightningDiT``).
        latent_size: ``(h, w)`` (or ``h``) of the latents drawn in ``predict`` mode / :meth:`sample`.
        path: the probability path (``LinearPath``).
        timesteps: training time distribution (``LogitNormalTimesteps``).
        loss: the regression loss (``VelocityLoss``: MSE + cosine).
        sampler: the ODE sampler (default ``EulerODESampler``, 250 steps, shift 0.3; the Fig. 6 configs take 249 steps =
            the reference's 250-point grid).
        guidance: classifier-free guidance (scale 1.0 = off).
        data_preprocessor: defaults to :class:`LatentDataPreprocessor`.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: dict, latent_size: int | Sequence[int] = 16,
                 path: dict | None = None, timesteps: dict | None = None, loss: dict | None = None,
                 sampler: dict | None = None, guidance: dict | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='LatentDataPreprocessor'),
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.latent_size = (latent_size, latent_size) if isinstance(latent_size, int) else tuple(latent_size)
        self.path = MODELS.build(path or dict(type='LinearPath'))
        self.timesteps = MODELS.build(timesteps or dict(type='LogitNormalTimesteps'))
        self.loss_fn = MODELS.build(loss or dict(type='VelocityLoss'))
        self.sampler = MODELS.build(sampler or dict(type='EulerODESampler', num_steps=250, shift=0.3))
        self.guidance = MODELS.build(guidance or dict(type='ClassifierFreeGuidance', scale=1.0))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.backbone.in_channels, *self.latent_size)

    def forward(self, inputs: Tensor, data_samples: Sequence[dict] | None = None, mode: str = 'tensor') -> Any:
        """``loss`` / ``tensor`` mode: ``inputs`` ``(B, C, H, W)`` normalised latents; ``predict`` mode: ``inputs`` is
        the initial noise ``x0`` (e.g. :func:`seeded_noise` of ``ClassBalancedNoiseDataset``) and each output is the
        data sample with ``pred_latent`` ``(C, H, W)`` added. ``data_samples``: dicts with ``label``. ``tensor`` mode
        returns the velocity at ``t`` = ``data_samples[i]['t']`` (0.5 by default)."""
        if mode == 'loss':
            return self.loss(inputs, labels_of(data_samples, inputs.shape[0], inputs.device))
        if mode == 'predict':
            if tuple(inputs.shape[1:]) != self.latent_shape:
                raise ValueError(f'predict mode takes the initial noise (B, C, h, w) = (B, {self.latent_shape}), got '
                                 f'{tuple(inputs.shape)}: the test dataset\'s latent_shape does not match the model')
            labels = labels_of(data_samples, inputs.shape[0], inputs.device)
            z = self.sample(labels, noise=inputs)
            return [dict(s, pred_latent=zi) for s, zi in zip(data_samples, z)]
        if mode == 'tensor':
            n = inputs.shape[0]
            y = labels_of(data_samples, n, inputs.device) if data_samples else torch.zeros(
                n, dtype=torch.int64, device=inputs.device)
            t = torch.tensor([float(s.get('t', 0.5)) for s in data_samples] if data_samples else [0.5] * n,
                             device=inputs.device)
            return self.backbone(inputs, t, y)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def loss(self, x1: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """One flow-matching loss evaluation on data latents ``x1`` ``(B, C, H, W)`` with labels ``(B,)``."""
        if tuple(x1.shape[1:]) != self.latent_shape:  # LatentDataCheckHook refuses this before the first step
            raise ConfigValueError(f'training latents of shape {tuple(x1.shape[1:])}, the DiT is configured for '
                                   f'{self.latent_shape} (model.backbone.in_channels, model.latent_size)')
        x0 = torch.randn_like(x1)
        t = self.timesteps.sample(x1.shape[0], device=x1.device)
        xt = self.path.interpolate(x0, x1, t)
        target = self.path.velocity(x0, x1, t)
        pred = self.backbone(xt, t, labels)
        return self.loss_fn(pred, target)

    def initial_noise(self, n: int, seeds: Sequence[int] | None = None, latent_size: tuple[int, int] | None = None,
                      device: torch.device | str | None = None) -> Tensor:
        """``(n, C, h, w)`` standard normal noise; with ``seeds``, sample ``i`` depends only on ``seeds[i]`` (so a
        distributed evaluation draws the same images as a single-process one)."""
        shape = (self.backbone.in_channels, *(latent_size or self.latent_size))
        device = device or next(self.parameters()).device
        if seeds is None:
            return torch.randn(n, *shape, device=device)
        return torch.stack([seeded_noise(shape, s) for s in seeds]).to(device)

    @torch.no_grad()
    def sample(self, labels: Tensor, seeds: Sequence[int] | None = None, noise: Tensor | None = None,
               latent_size: tuple[int, int] | None = None, sampler: Any = None) -> Tensor:
        """Generate normalised latents ``(B, C, h, w)`` for class ``labels`` ``(B,)``.

        The backbone runs in eval mode (no label dropout); the caller swaps in EMA weights if wanted. ``sampler``
        overrides the configured ODE sampler (e.g. fewer steps for a preview grid).
        """
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            x0 = noise if noise is not None else self.initial_noise(labels.shape[0], seeds, latent_size,
                                                                     labels.device)
            return (sampler or self.sampler).sample(self.guidance.velocity_fn(self.backbone, labels), x0)
        finally:
            self.backbone.train(was_training)
