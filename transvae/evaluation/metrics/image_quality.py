"""PSNR, SSIM and LPIPS metrics over ``pred_img`` / ``gt_img`` pairs (see ``transvae.evaluation.functional``)."""
from __future__ import annotations

import torch
from torch import Tensor

from transvae.registry import METRICS

from ..functional import image_quality as F
from .base import BaseReconstructionMetric, resolve_device

__all__ = ['PSNRMetric', 'SSIMMetric', 'LPIPSMetric']


@METRICS.register_module()
class PSNRMetric(BaseReconstructionMetric):
    """Mean per-image PSNR (dB) on uint8-quantised images; key ``psnr``.

    An image reproduced exactly gives ``inf`` (and so does the mean).

    Args:
        collect_device: ``'cpu'`` or ``'gpu'`` for gathering results across ranks.
        prefix: Optional key prefix (default none: the key is ``psnr``).
    """

    metric_key = 'psnr'

    def score(self, pred: Tensor, gt: Tensor) -> Tensor:
        return F.psnr(pred, gt)


@METRICS.register_module()
class SSIMMetric(BaseReconstructionMetric):
    """Mean per-image SSIM (Gaussian 11x11, sigma 1.5, per RGB channel, on 0..255 quantised images); key ``ssim``."""

    metric_key = 'ssim'

    def score(self, pred: Tensor, gt: Tensor) -> Tensor:
        return F.ssim(pred, gt)


@METRICS.register_module()
class LPIPSMetric(BaseReconstructionMetric):
    """Mean per-image LPIPS on uint8-quantised images; key ``lpips``.

    Args:
        net: ``'alex'`` (default) or ``'vgg'``.
        device: Where the LPIPS network runs; ``None``: CUDA when available, else CPU.
        collect_device: ``'cpu'`` or ``'gpu'`` for gathering results across ranks.
        prefix: Optional key prefix.
    """

    metric_key = 'lpips'

    def __init__(self,
                 net: str = 'alex',
                 device: str | torch.device | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if net not in ('alex', 'vgg'):
            raise ValueError(f"LPIPSMetric net must be 'alex' or 'vgg', got {net!r}")
        self.net = net
        self.device = resolve_device(device)

    def score(self, pred: Tensor, gt: Tensor) -> Tensor:
        return F.lpips(pred.to(self.device), gt.to(self.device), net=self.net)
