"""Shared plumbing of the reconstruction metrics: reading ``pred_img`` / ``gt_img`` pairs from predict outputs."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

__all__ = ['BaseReconstructionMetric', 'iter_image_pairs', 'resolve_device']


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU."""
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(device)


def _field(sample: Any, key: str) -> Any:
    if isinstance(sample, dict):
        if key not in sample:
            raise KeyError(f'data sample has no {key!r} (keys: {sorted(sample)}); reconstruction metrics expect '
                           "predict outputs with 'pred_img' and 'gt_img', float (3, H, W) tensors in [0, 1]")
        return sample[key]
    value = getattr(sample, key, None)
    if value is None:
        raise KeyError(f'data sample of type {type(sample).__name__} has no {key!r}; reconstruction metrics expect '
                       "'pred_img' and 'gt_img', float (3, H, W) tensors in [0, 1]")
    return value


def _as_image(value: Any, key: str) -> Tensor:
    t = torch.as_tensor(value) if not isinstance(value, Tensor) else value
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f'{key} must be a (3, H, W) tensor, got shape {tuple(t.shape)}')
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    if not t.is_floating_point():
        raise TypeError(f'{key} must be float in [0, 1] or uint8, got {t.dtype}')
    return t.detach()


def iter_image_pairs(data_samples: Sequence[Any]) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(pred, gt)`` batches ``(b, 3, H, W)``, grouping consecutive samples of one size.

    Each sample is a dict (or data element) with ``pred_img`` and ``gt_img``: ``(3, H, W)`` float in ``[0, 1]``
    (uint8 is accepted and divided by 255). Images of different sizes in one batch are handled group by group.
    """
    preds: list[Tensor] = []
    gts: list[Tensor] = []
    for sample in data_samples:
        pred, gt = _as_image(_field(sample, 'pred_img'), 'pred_img'), _as_image(_field(sample, 'gt_img'), 'gt_img')
        if pred.shape != gt.shape:
            raise ValueError(f'pred_img {tuple(pred.shape)} and gt_img {tuple(gt.shape)} differ in shape')
        if preds and preds[0].shape != pred.shape:
            yield torch.stack(preds), torch.stack(gts)
            preds, gts = [], []
        preds.append(pred)
        gts.append(gt.to(pred.device))
    if preds:
        yield torch.stack(preds), torch.stack(gts)


class BaseReconstructionMetric(BaseMetric):
    """Mean of a per-image score over all ``(pred_img, gt_img)`` pairs.

    ``self.results`` keeps one ``{metric_key: float}`` per image, so mmengine's ``collect_results`` gathers exact
    per-image values across ranks and the average is over images (not over batches).
    """

    default_prefix: str | None = None
    metric_key: str = ''

    def score(self, pred: Tensor, gt: Tensor) -> Tensor:
        """``(b,)`` scores of one batch of ``(b, 3, H, W)`` images in ``[0, 1]``."""
        raise NotImplementedError

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for pred, gt in iter_image_pairs(data_samples):
            values = self.score(pred, gt).detach().cpu().double().tolist()
            self.results.extend({self.metric_key: v} for v in values)

    def compute_metrics(self, results: list) -> dict[str, float]:
        values = np.asarray([r[self.metric_key] for r in results], dtype=np.float64)
        return {self.metric_key: float(values.mean()) if values.size else float('nan')}
