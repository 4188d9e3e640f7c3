"""Validation reconstruction loss (the quantity plotted in the paper's ablation figures): L1 + LPIPS per image."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from transvae.registry import METRICS

from ..functional import image_quality as F
from .base import BaseReconstructionMetric, iter_image_pairs, resolve_device

__all__ = ['ReconstructionLossMetric']


@METRICS.register_module()
class ReconstructionLossMetric(BaseReconstructionMetric):
    """Mean over val images of ``L1 + w * LPIPS``; keys ``rec_loss`` (plus ``rec_l1`` and ``rec_lpips``).

    L1 is the mean absolute error on the ``[-1, 1]`` scale (``2 * mean|pred - gt|`` for ``[0, 1]`` inputs, i.e. the
    L1 term of the training loss); LPIPS runs on the float images (no uint8 quantisation, as in the loss). The
    word 'loss' is only special in *training* log dicts (mmengine sums ``loss*`` keys there), not in metric keys.

    Args:
        net: LPIPS backbone, ``'alex'`` (default) or ``'vgg'``.
        lpips_weight: weight of the LPIPS term (1.0 in the paper's §3.1 A setting).
        device: where LPIPS runs; ``None``: CUDA when available, else CPU.
        collect_device / prefix / collect_dir: as in :class:`mmengine.evaluator.BaseMetric`.
    """

    metric_key = 'rec_loss'

    def __init__(self,
                 net: str = 'alex',
                 lpips_weight: float = 1.0,
                 device: str | torch.device | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if net not in ('alex', 'vgg'):
            raise ValueError(f"ReconstructionLossMetric net must be 'alex' or 'vgg', got {net!r}")
        self.net = net
        self.lpips_weight = float(lpips_weight)
        self.device = resolve_device(device)

    def components(self, pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
        """``(l1, lpips)``, each ``(b,)``, for ``(b, 3, H, W)`` images in ``[0, 1]``."""
        pred = pred.float().clamp(0, 1)
        gt = gt.float().clamp(0, 1)
        l1 = (pred - gt).abs().flatten(1).mean(dim=1) * 2.0  # on the [-1, 1] scale
        lp = F.lpips(pred.to(self.device), gt.to(self.device), net=self.net, quantize=False)
        return l1.double().cpu(), lp.double().cpu().view(-1)

    def score(self, pred: Tensor, gt: Tensor) -> Tensor:
        l1, lp = self.components(pred, gt)
        return l1 + self.lpips_weight * lp

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for pred, gt in iter_image_pairs(data_samples):
            l1, lp = self.components(pred, gt)
            for a, b in zip(l1.tolist(), lp.tolist()):
                self.results.append({'rec_loss': a + self.lpips_weight * b, 'rec_l1': a, 'rec_lpips': b})

    def compute_metrics(self, results: list) -> dict[str, float]:
        out = {}
        for key in ('rec_loss', 'rec_l1', 'rec_lpips'):
            values = np.asarray([r[key] for r in results], dtype=np.float64)
            out[key] = float(values.mean()) if values.size else float('nan')
        return out
