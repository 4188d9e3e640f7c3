"""Training-time distributions of ``t`` in ``(0, 1)``."""
from __future__ import annotations

import torch
from torch import Tensor

from transvae.registry import MODELS


@MODELS.register_module()
class LogitNormalTimesteps:
    """``t = sigmoid(n)``, ``n ~ N(mean, std^2)`` (LightningDiT ``use_lognorm``: mean 0, std 1).

    Args:
        mean: mean of the normal before the sigmoid (positive values favour data-side times).
        std: its standard deviation.
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        if std <= 0:
            raise ValueError(f'std must be > 0, got {std}')
        self.mean, self.std = mean, std

    def sample(self, n: int, device: torch.device | str = 'cpu', generator: torch.Generator | None = None) -> Tensor:
        """``(n,)`` float32 times."""
        z = torch.randn(n, generator=generator, device=device if generator is None else generator.device)
        return torch.sigmoid(z * self.std + self.mean).to(device)


@MODELS.register_module()
class UniformTimesteps:
    """``t ~ U(0, 1)`` (plain SiT)."""

    def sample(self, n: int, device: torch.device | str = 'cpu', generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, generator=generator, device=device if generator is None else generator.device).to(device)
