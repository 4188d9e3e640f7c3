"""Channel normalisation of latents by the dataset statistics stored beside the shards."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from transvae.utils.errors import InputNotFoundError
from transvae.utils.latent_folders import layout_of


class LatentNormalizer:
    """``z_n = (z - mean) / std * multiplier`` and its inverse (LightningDiT ``latent_norm``, multiplier 1.0).

    Args:
        mean: ``(1, C, 1, 1)`` (or ``(C,)``) channel means.
        std: channel standard deviations, same shape.
        multiplier: scale applied after the normalisation.
        eps: floor of ``std`` (a dead channel would otherwise divide by zero).
    """

    def __init__(self, mean: Tensor, std: Tensor, multiplier: float = 1.0, eps: float = 1e-6) -> None:
        mean, std = torch.as_tensor(mean).float(), torch.as_tensor(std).float()
        if mean.numel() != std.numel():
            raise ValueError(f'mean ({mean.numel()}) and std ({std.numel()}) have different channel counts')
        self.mean = mean.reshape(-1, 1, 1)
        self.std = std.reshape(-1, 1, 1).clamp_min(eps)
        self.multiplier = float(multiplier)

    @property
    def num_channels(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def from_dir(cls, latent_dir: str, multiplier: float = 1.0, stats_file: str | None = None,
                 num_channels: int | None = None) -> 'LatentNormalizer':
        """Load ``mean`` / ``std`` from the statistics of the latent folder ``latent_dir``, whichever its layout
        (:func:`transvae.utils.latent_folders.layout_of`: ``latents_stats.safetensors``, or the official
        ``latents_stats.pt`` loaded with ``weights_only=True``; ``stats_file`` another file, relative or absolute),
        validated (keys, dtype, shape, finite, ``num_channels`` when given); a missing or malformed file is an
        error naming it."""
        try:
            stats = layout_of(latent_dir).load_stats(latent_dir, num_channels=num_channels, stats_file=stats_file)
        except InputNotFoundError as e:
            raise InputNotFoundError(f'{e}, or set latent_norm=False to train on raw latents') from None
        if not math.isfinite(float(multiplier)) or float(multiplier) <= 0:
            raise ValueError(f'latent_multiplier must be a finite number > 0, got {multiplier!r}')
        return cls(stats['mean'], stats['std'], multiplier)

    def _check(self, z: Tensor) -> None:
        if z.dim() < 3 or z.shape[-3] != self.num_channels:
            raise ValueError(f'latents {tuple(z.shape)} do not have the {self.num_channels} channels of the stats')

    def normalize(self, z: Tensor) -> Tensor:
        """``(..., C, H, W)`` raw latents -> normalised."""
        self._check(z)
        return (z - self.mean.to(z)) / self.std.to(z) * self.multiplier

    def denormalize(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`normalize` (model samples -> latents the VAE decodes)."""
        self._check(z)
        return z / self.multiplier * self.std.to(z) + self.mean.to(z)
