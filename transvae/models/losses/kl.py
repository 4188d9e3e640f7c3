"""KL regularisation of the posterior (LDM convention: summed over latent elements, averaged over the batch)."""
from __future__ import annotations

from torch import Tensor, nn

from transvae.registry import MODELS

from ..distributions import DiagonalGaussian


@MODELS.register_module()
class KLLoss(nn.Module):
    """``weight * mean_b KL(q_b || N(0, I))`` with the KL summed over ``d * h * w`` (PAPER.md §3.2, weight 1e-8)."""

    def __init__(self, loss_weight: float = 1e-8) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, posterior: DiagonalGaussian) -> Tensor:
        return self.loss_weight * posterior.kl().mean()
