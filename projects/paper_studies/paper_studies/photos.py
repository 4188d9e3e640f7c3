"""Held-out photos at a given size through the dataset transforms, and trained study models to reconstruct them."""
from __future__ import annotations

import glob
import inspect
import os.path as osp
import re
from typing import Optional

import torch

from .study import REPO


def val_photo_paths(data_root: str = 'data/sample_photos', num: Optional[int] = None,
                    one_per_source: bool = False) -> list[str]:
    """Sorted held-out photos ``data_root/val/<source>/*.png`` (the set is prepared on first use)."""
    from transvae.datasets.sample_photos import prepare_sample_photos
    data_root = data_root if osp.isabs(data_root) else osp.join(REPO, data_root)
    prepare_sample_photos(data_root)
    paths = sorted(glob.glob(osp.join(data_root, 'val', '*', '*.png')))
    if one_per_source:
        seen: set[str] = set()
        paths = [p for p in paths if not (osp.dirname(p) in seen or seen.add(osp.dirname(p)))]
    return paths[:num] if num else paths


def load_photo(path: str, size: int) -> tuple[torch.Tensor, bool]:
    """``(float (3, size, size) in [0, 1], upscaled)``: the dataset's ``LoadImageRGB`` and ``CenterCrop``, with
    ``ResizeShortSide(size)`` (bicubic) first only for a photo whose short side is below ``size``; a larger photo
    is not downscaled, so a larger crop shows more of it at the same scale (the extrapolation setting of Fig. 3a)."""
    from transvae.datasets.transforms import CenterCrop, LoadImageRGB, ResizeShortSide
    results = LoadImageRGB().transform(dict(img_path=path))
    if results is None:
        raise OSError(f'cannot read {path}')
    upscaled = min(results['img'].shape[:2]) < size
    if upscaled:
        results = ResizeShortSide(size, interpolation='bicubic').transform(results)
    img = CenterCrop(size).transform(results)['img']
    return torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255.0, upscaled


def resolve_checkpoint(path: str, config: Optional[str] = None, step: Optional[int] = None) -> tuple[str, str]:
    """``(config, checkpoint)`` from a work dir (its dumped config; ``iter_{step}.pth`` or the last checkpoint) or a
    ``.pth`` (config from ``config``, else the dumped config in the same folder)."""
    if osp.isdir(path):
        wd = path
        if step is not None:
            ckpt = osp.join(wd, f'iter_{step}.pth')
        elif osp.isfile(osp.join(wd, 'last_checkpoint')):
            with open(osp.join(wd, 'last_checkpoint')) as f:
                ckpt = f.read().strip()
            # a work dir copied elsewhere (runs shared between studies) keeps the old absolute path: use its file
            ckpt = ckpt if osp.isabs(ckpt) and osp.isfile(ckpt) else osp.join(wd, osp.basename(ckpt))
        else:
            cands = sorted(glob.glob(osp.join(wd, 'iter_*.pth')), key=lambda p: int(re.findall(r'iter_(\d+)', p)[-1]))
            if not cands:
                raise FileNotFoundError(f'no checkpoint in {wd}')
            ckpt = cands[-1]
    else:
        wd, ckpt = osp.dirname(osp.abspath(path)), path
    if not osp.isfile(ckpt):
        raise FileNotFoundError(f'checkpoint not found: {ckpt}')
    if config is None:
        dumped = sorted(glob.glob(osp.join(wd, '*.py')))
        if not dumped:
            raise FileNotFoundError(f'no dumped config in {wd}; pass a config')
        config = dumped[0]
    return config, ckpt


def load_model(config: str, checkpoint: str, preset: Optional[str] = None) -> torch.nn.Module:
    """``transvae.apis.init_model`` on the CPU; the study's own checkpoints are trusted."""
    from transvae.apis import init_model
    kwargs = dict(device='cpu', preset=preset if preset not in (None, 'none') else None)
    if 'trusted' in inspect.signature(init_model).parameters:
        kwargs['trusted'] = True
    return init_model(config, checkpoint, **kwargs)


@torch.no_grad()
def reconstruct_images(model: torch.nn.Module, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """Reconstruct ``(3, H, W)`` images in ``[0, 1]`` one at a time (sizes may differ), whole (no tiling)."""
    from transvae.apis import reconstruct
    return [reconstruct(model, x).clamp(0, 1) for x in images]
