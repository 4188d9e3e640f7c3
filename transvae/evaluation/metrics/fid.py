"""Reconstruction FID (rFID) between ``gt_img`` and ``pred_img``."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from transvae.registry import METRICS

from ..functional.fid import FID_PROTOCOL, fid_from_features, get_fid_inception
from .base import iter_image_pairs, resolve_device

__all__ = ['FIDMetric']

PAPER_MIN_IMAGES = 2048


@METRICS.register_module()
class FIDMetric(BaseMetric):
    """rFID: Fréchet Inception distance between the reconstructions and their inputs; key ``rfid``.

    ``process`` extracts 2048-d Inception pool3 features of every ``gt_img`` (real) and ``pred_img`` (fake) and
    keeps them in ``self.results`` (so DDP gathers features, not images); ``compute_metrics`` runs
    ``torchmetrics.image.FrechetInceptionDistance`` (float64) on them. The protocol (network, quantisation, resize,
    scaling) is :data:`protocol` and is written to the log with N at every evaluation. With fewer than 2048 images
    the covariances are rank-deficient and the value is biased upwards; a warning says so (the paper protocol uses
    50k ImageNet validation images).

    Args:
        device: Where Inception runs; ``None``: CUDA when available, else CPU.
        collect_device: ``'cpu'`` or ``'gpu'`` for gathering results across ranks.
        prefix: Optional key prefix (default none).
    """

    default_prefix: str | None = None
    metric_key = 'rfid'
    protocol: str = FID_PROTOCOL

    def __init__(self,
                 device: str | torch.device | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.device = resolve_device(device)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        inception = get_fid_inception(self.device)  # built once per process and device
        for pred, gt in iter_image_pairs(data_samples):
            fake = inception(pred.to(self.device)).cpu().numpy()
            real = inception(gt.to(self.device)).cpu().numpy()
            self.results.extend({'real': r, 'fake': f} for r, f in zip(real, fake))

    def compute_metrics(self, results: list) -> dict[str, float]:
        logger = MMLogger.get_current_instance()
        n = len(results)
        logger.info(f'FIDMetric: N={n} image pairs, protocol={self.protocol}')
        if n < 2:
            logger.warning(f'rFID needs at least 2 images, got {n}; reporting nan')
            return {self.metric_key: float('nan')}
        if n < PAPER_MIN_IMAGES:
            logger.warning(f'rFID on {n} images is biased; the paper protocol uses 50k')
        real = np.stack([r['real'] for r in results])
        fake = np.stack([r['fake'] for r in results])
        return {self.metric_key: fid_from_features(real, fake)}
