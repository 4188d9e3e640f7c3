"""Pack a decoded sample into the ``inputs`` / ``data_samples`` pair the data preprocessor consumes."""
from __future__ import annotations

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from transvae.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackVAEInputs(BaseTransform):
    """Pack ``img`` into a uint8 ``(3, H, W)`` contiguous tensor and the metadata into a plain dict.

    Returns:
        dict: ``inputs``: ``torch.uint8 (3, H, W)``; ``data_samples``: ``dict(img_path: str, ori_shape: (h, w),
        img_shape: (h, w), label: int (-1 when unlabelled), skipped: list[str])``. ``skipped`` is always present
        (empty by default); the dataset fills it with the paths it had to skip before this sample.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None].repeat(3, axis=2)
        if img.dtype != np.uint8:
            raise TypeError(f'PackVAEInputs expects a uint8 image, got {img.dtype}')
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).contiguous()
        h, w = img.shape[:2]
        data_samples = dict(
            img_path=str(results.get('img_path', '')),
            ori_shape=tuple(int(s) for s in results.get('ori_shape', (h, w))),
            img_shape=(int(h), int(w)),
            label=int(results.get('gt_label', results.get('label', -1))),
            skipped=list(results.get('skipped', [])),
        )
        return dict(inputs=inputs, data_samples=data_samples)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'
