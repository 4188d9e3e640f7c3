"""Batch pre-processing: uint8 images -> float in ``[-1, 1]``, stacked (padded when sizes differ)."""
from __future__ import annotations

from collections.abc import Sequence

from mmengine.model import ImgDataPreprocessor

from transvae.registry import MODELS


@MODELS.register_module()
class VAEDataPreprocessor(ImgDataPreprocessor):
    """Stack ``(3, H, W)`` uint8 images into ``(B, 3, H, W)`` float in ``[-1, 1]`` (``(x - 127.5) / 127.5``).

    Images of different sizes in one batch are padded bottom-right to the largest (and to ``pad_size_divisor``).
    Padding to the VAE's compression factor is done by the VAE itself (reflect, then cropped back), so it need not
    be done here.
    """

    def __init__(self, mean: Sequence[float] = (127.5, 127.5, 127.5), std: Sequence[float] = (127.5, 127.5, 127.5),
                 pad_size_divisor: int = 1, pad_value: float = 0.0, non_blocking: bool = False) -> None:
        super().__init__(mean=mean, std=std, pad_size_divisor=pad_size_divisor, pad_value=pad_value,
                         bgr_to_rgb=False, rgb_to_bgr=False, non_blocking=non_blocking)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Stack and scale ``data['inputs']`` (list of ``(3, H, W)`` uint8) into ``(B, 3, H, W)`` float in [-1, 1].

        Raises:
            ValueError: for a batch without images (every file of it was unreadable and skipped): the loop must
                pass over it, not the model.
        """
        inputs = data.get('inputs') if isinstance(data, dict) else None
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            raise ValueError(
                'VAEDataPreprocessor got a batch without images (every file of it was unreadable and skipped by '
                "transvae.skip_none_collate). Validate / test with val_cfg=dict(type='SkipEmptyValLoop') and "
                "test_cfg=dict(type='SkipEmptyTestLoop'), which pass over such batches.")
        return super().forward(data, training)
