"""The velocity regression loss of LightningDiT: MSE plus a cosine-similarity term."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS


@MODELS.register_module()
class VelocityLoss(nn.Module):
    """``mean((v - u)^2) + cos_weight * mean(1 - cos(v, u))``, the cosine taken over channels at each position.

    Both terms are averaged per sample over every non-batch element, then over the batch (LightningDiT ``train.py``:
    ``loss.mean() + cos_loss.mean()``).

    Args:
        cos_weight: weight of the cosine term (1.0 with ``use_cosine_loss``; 0 disables it).
    """

    def __init__(self, cos_weight: float = 1.0) -> None:
        super().__init__()
        self.cos_weight = cos_weight

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``pred``, ``target`` ``(B, C, H, W)`` -> ``{'loss_mse', 'loss_cos'}`` scalars (keys mmengine sums)."""
        if pred.shape != target.shape:
            raise ValueError(f'prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape')
        pred, target = pred.float(), target.float()
        out = {'loss_mse': (pred - target).pow(2).flatten(1).mean(1).mean()}
        if self.cos_weight:
            cos = F.cosine_similarity(pred, target, dim=1)  # (B, H, W)
            out['loss_cos'] = self.cos_weight * (1 - cos).flatten(1).mean(1).mean()
        return out
