"""The diagonal Gaussian posterior of a KL-VAE (LDM convention)."""
from __future__ import annotations

import torch
from torch import Tensor


class DiagonalGaussian:
    """``N(mean, exp(logvar))`` per latent element, parameterised by the encoder's stacked moments.

    Args:
        moments: ``(B, 2d, h, w)``: mean then log-variance along channels. The log-variance is clamped to
            ``[-30, 20]`` as in LDM.
        deterministic: make ``sample()`` return the mean and ``kl()`` zero.
    """

    def __init__(self, moments: Tensor, deterministic: bool = False) -> None:
        if moments.dim() != 4 or moments.shape[1] % 2:
            raise ValueError(f'moments must be (B, 2d, h, w), got {tuple(moments.shape)}')
        self.mean, logvar = moments.chunk(2, dim=1)  # each (B, d, h, w)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.deterministic = deterministic
        if deterministic:
            self.logvar = torch.full_like(self.mean, -30.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample ``mean + std * eps`` ``(B, d, h, w)``."""
        if self.deterministic:
            return self.mean
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        """The posterior mean ``(B, d, h, w)`` (used for evaluation and latent extraction)."""
        return self.mean

    def kl(self) -> Tensor:
        """``KL(q || N(0, I))`` summed over latent elements: ``(B,)``."""
        if self.deterministic:
            return self.mean.new_zeros(self.mean.shape[0])
        return 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar).sum(dim=(1, 2, 3))

    def nll(self, sample: Tensor) -> Tensor:
        """Negative log-likelihood of ``sample`` under the posterior, summed per item: ``(B,)``."""
        log2pi = torch.log(torch.tensor(2.0 * torch.pi, dtype=sample.dtype, device=sample.device))
        return 0.5 * (log2pi + self.logvar + (sample - self.mean).pow(2) / self.var).sum(dim=(1, 2, 3))
