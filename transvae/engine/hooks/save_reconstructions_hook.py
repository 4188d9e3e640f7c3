"""Write ``input | reconstruction`` PNGs of every test (or val) image (``tools/test.py --show-dir``)."""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from transvae.registry import HOOKS

from .reconstruction_grid_hook import make_grid


def _unit_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@HOOKS.register_module()
class SaveReconstructionsHook(Hook):
    """Save ``gt_img | pred_img`` of each predicted sample (the VAE's ``predict`` outputs) as ``out_dir/{stem}.png``.

    Args:
        out_dir: output directory (created; relative paths are relative to the current directory).
        on_val: also save during validation (off by default: it would overwrite on every validation).
        max_images: stop after this many images per rank (None = all).
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, on_val: bool = False, max_images: Optional[int] = None) -> None:
        self.out_dir = out_dir
        self.on_val = on_val
        self.max_images = max_images
        self._count = 0

    def _save(self, batch_idx: int, outputs: Optional[Sequence]) -> None:
        if not outputs:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        for i, out in enumerate(outputs):
            if self.max_images is not None and self._count >= self.max_images:
                return
            if not isinstance(out, dict) or 'pred_img' not in out or 'gt_img' not in out:
                continue
            path = out.get('img_path')
            stem = osp.splitext(osp.basename(str(path)))[0] if path else f'r{get_rank()}_b{batch_idx}_{i}'
            grid = make_grid([(_unit_to_uint8(out['gt_img']), _unit_to_uint8(out['pred_img']))])
            from PIL import Image
            Image.fromarray(grid).save(osp.join(self.out_dir, f'{stem}.png'))
            self._count += 1

    def before_test(self, runner) -> None:
        self._count = 0

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._save(batch_idx, outputs)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.on_val:
            self._save(batch_idx, outputs)
