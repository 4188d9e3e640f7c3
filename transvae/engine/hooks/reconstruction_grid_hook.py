"""Save input | reconstruction grids of a fixed set of validation images during training (and after testing)."""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from transvae.registry import HOOKS


def _to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def make_grid(pairs: Sequence[tuple[np.ndarray, np.ndarray]], pad: int = 2) -> np.ndarray:
    """Rows of ``input | reconstruction`` (HWC uint8), white padding, images of different sizes allowed."""
    row_h = [max(a.shape[0], b.shape[0]) for a, b in pairs]
    col_w = [max(a.shape[1] for a, _ in pairs), max(b.shape[1] for _, b in pairs)]
    H = sum(row_h) + pad * (len(pairs) + 1)
    W = sum(col_w) + pad * 3
    grid = np.full((H, W, 3), 255, dtype=np.uint8)
    y = pad
    for (a, b), h in zip(pairs, row_h):
        grid[y:y + a.shape[0], pad:pad + a.shape[1]] = a
        x = pad * 2 + col_w[0]
        grid[y:y + b.shape[0], x:x + b.shape[1]] = b
        y += h + pad
    return grid


@HOOKS.register_module()
class ReconstructionGridHook(Hook):
    """Write ``work_dir/vis/iter_{k}.png``: one row per fixed validation image, ``input | reconstruction``.

    The images are the first ``num_images`` valid items of the val dataloader's dataset (the test dataloader's when
    there is no val loop), loaded once and reused, so grids from different iterations are comparable. Each image is
    center-cropped to at most ``max_side`` and to a multiple of ``size_divisor``. The model's
    ``reconstruct(x: float (1, 3, H, W) in [-1, 1])`` runs under ``torch.no_grad()`` in eval mode on rank 0 only (the
    DDP wrapper is bypassed); train mode is restored afterwards. The grid also goes to the visualizer's backends.

    Args:
        interval: every ``interval`` training iterations (0 disables the periodic grids).
        at_iters: extra iterations (completed-iteration counts; 0 = before the first step).
        num_images: number of rows.
        max_side: largest side of a shown image.
        size_divisor: crop sizes to a multiple of this (the model's compression factor).
        after_test: also write ``vis/test_{checkpoint stem}.png`` (e.g. ``test_iter_2000.png``) after testing.
        out_dir: sub-directory of ``work_dir``.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1000, at_iters: Sequence[int] = (), num_images: int = 4, max_side: int = 256,
                 size_divisor: int = 16, after_test: bool = True, out_dir: str = 'vis') -> None:
        self.interval = int(interval)
        self.at_iters = {int(i) for i in at_iters}
        self.num_images = int(num_images)
        self.max_side = int(max_side)
        self.size_divisor = int(size_divisor)
        self.enable_test = bool(after_test)
        self.out_dir = out_dir
        self._images: Optional[list[torch.Tensor]] = None

    # -- images ------------------------------------------------------------------------------------------------------
    def _crop(self, img: torch.Tensor) -> torch.Tensor:
        _, h, w = img.shape
        th = min(h, self.max_side) // self.size_divisor * self.size_divisor
        tw = min(w, self.max_side) // self.size_divisor * self.size_divisor
        if th == 0 or tw == 0:
            raise ValueError(f'image of size {h}x{w} is smaller than size_divisor={self.size_divisor}')
        top, left = (h - th) // 2, (w - tw) // 2
        return img[:, top:top + th, left:left + tw]

    def _dataset(self, runner):
        for name in ('_val_loop', '_test_loop'):
            loop = getattr(runner, name, None)
            dl = getattr(loop, 'dataloader', None)
            if dl is not None:
                return dl.dataset
        for name in ('_val_dataloader', '_test_dataloader'):
            dl = getattr(runner, name, None)
            if dl is not None and hasattr(dl, 'dataset'):
                return dl.dataset
        return None

    def _load_images(self, runner) -> list[torch.Tensor]:
        if self._images is not None:
            return self._images
        dataset = self._dataset(runner)
        images: list[torch.Tensor] = []
        if dataset is None:
            runner.logger.warning('ReconstructionGridHook: no val/test dataset; no grids will be written.')
        else:
            for idx in range(len(dataset)):
                if len(images) >= self.num_images:
                    break
                item = dataset[idx]
                if item is None:  # a corrupt image (see skip_none_collate)
                    continue
                img = item['inputs'] if isinstance(item, dict) else item
                if not torch.is_tensor(img):
                    img = torch.as_tensor(np.ascontiguousarray(img))
                img = self._crop(img)
                x = img.float() / 127.5 - 1.0 if img.dtype == torch.uint8 else img.float()
                images.append(x)
        self._images = images
        return images

    # -- drawing -----------------------------------------------------------------------------------------------------
    def draw(self, runner, filename: str) -> Optional[str]:
        """Reconstruct the fixed images and write ``work_dir/out_dir/filename``; returns the path (rank 0)."""
        if not is_main_process():
            return None
        images = self._load_images(runner)
        if not images:
            return None
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'reconstruct'):
            runner.logger.warning(f'ReconstructionGridHook: {type(model).__name__} has no `reconstruct`; skipped.')
            return None
        device = next((p.device for p in model.parameters()), torch.device('cpu'))
        was_training = model.training
        model.eval()
        pairs = []
        try:
            with torch.no_grad():
                for x in images:
                    rec = model.reconstruct(x.unsqueeze(0).to(device))
                    if isinstance(rec, (list, tuple)):
                        rec = rec[0]
                    rec = rec[0] if rec.dim() == 4 else rec
                    pairs.append((_to_uint8_hwc(x), _to_uint8_hwc(rec)))
        finally:
            model.train(was_training)
        grid = make_grid(pairs)
        out_dir = osp.join(runner.work_dir, self.out_dir)
        os.makedirs(out_dir, exist_ok=True)
        path = osp.join(out_dir, filename)
        from PIL import Image
        Image.fromarray(grid).save(path)
        try:
            runner.visualizer.add_image('reconstruction', grid, step=runner.iter)
        except Exception as e:  # noqa: BLE001 - a vis backend problem must not stop training
            runner.logger.warning(f'ReconstructionGridHook: visualizer.add_image failed: {e}')
        return path

    # -- hook points -------------------------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        if 0 in self.at_iters and runner.iter == 0:
            self.draw(runner, 'iter_0.png')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        done = runner.iter + 1
        if (self.interval > 0 and done % self.interval == 0) or done in self.at_iters:
            self.draw(runner, f'iter_{done}.png')

    def after_test(self, runner) -> None:
        if self.enable_test:
            ckpt = getattr(runner, '_load_from', None)
            name = osp.splitext(osp.basename(str(ckpt)))[0] if ckpt else f'iter_{runner.iter}'
            self.draw(runner, f'test_{name}.png')
