"""Geometric transforms for VAE training / evaluation on uint8 ``(H, W, 3)`` images.

Randomness comes from NumPy's global RNG (as in mmcv), so ``mmengine`` seeding (``randomness=dict(seed=...)`` and
its per-worker ``worker_init_fn``) makes every crop and flip reproducible.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import RandomFlip as _MMCVRandomFlip
from PIL import Image

from transvae.registry import TRANSFORMS

SizeT = Union[int, Sequence[int]]

_PIL_INTERP = {
    'nearest': Image.NEAREST,
    'bilinear': Image.BILINEAR,
    'bicubic': Image.BICUBIC,
    'lanczos': Image.LANCZOS,
}
INTERPOLATIONS = tuple(_PIL_INTERP) + ('area', )


def _pair(size: SizeT) -> tuple[int, int]:
    """``int`` -> ``(size, size)``; ``(h, w)`` -> itself. Validates positivity."""
    if isinstance(size, bool) or (isinstance(size, (tuple, list)) and any(isinstance(s, bool) for s in size)):
        raise ValueError(f'size must be an int or (h, w), got {size!r}')
    if isinstance(size, int):
        hw = (size, size)
    else:
        hw = tuple(int(s) for s in size)
        if len(hw) != 2:
            raise ValueError(f'size must be an int or (h, w), got {size!r}')
    if min(hw) <= 0:
        raise ValueError(f'size must be positive, got {size!r}')
    return hw  # type: ignore[return-value]


def resize_image(img: np.ndarray, hw: tuple[int, int], interpolation: str = 'bicubic') -> np.ndarray:
    """Antialiased resize of a uint8 ``(H, W, 3)`` array to ``hw = (h, w)``.

    ``bicubic`` / ``bilinear`` / ``lanczos`` / ``nearest`` use PIL (whose filters widen on downscaling, i.e. they
    are antialiased); ``area`` uses ``cv2.INTER_AREA`` (box filter; bicubic when upscaling).
    """
    h, w = hw
    if img.shape[:2] == (h, w):
        return img
    if interpolation == 'area':
        up = h > img.shape[0] or w > img.shape[1]
        out = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC if up else cv2.INTER_AREA)
        return np.ascontiguousarray(out)
    if interpolation not in _PIL_INTERP:
        raise ValueError(f'interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}')
    out = Image.fromarray(img).resize((w, h), resample=_PIL_INTERP[interpolation])
    return np.ascontiguousarray(np.asarray(out))


def _check_interp(interpolation: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f'interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}')
    return interpolation


@TRANSFORMS.register_module()
class ResizeShortSide(BaseTransform):
    """Resize so the short side equals ``size``, keeping the aspect ratio (antialiased).

    Args:
        size: target length of the short side.
        interpolation: one of ``bicubic`` (default, PIL), ``bilinear``, ``lanczos``, ``nearest``, ``area`` (cv2).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``. Added keys: ``scale_factor`` ``(sw, sh)``.
    """

    resolution_keys = ('size', )  # transforms/resolution.py: `size` sets the output resolution

    def __init__(self, size: int, interpolation: str = 'bicubic') -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f'size must be a positive int, got {size!r}')
        self.size = size
        self.interpolation = _check_interp(interpolation)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        if h <= w:
            nh, nw = self.size, max(1, int(round(w * self.size / h)))
        else:
            nh, nw = max(1, int(round(h * self.size / w))), self.size
        results['img'] = resize_image(img, (nh, nw), self.interpolation)
        results['img_shape'] = (nh, nw)
        results['scale_factor'] = (nw / w, nh / h)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, interpolation={self.interpolation!r})'


#: the ``np.pad`` modes a crop may pad a small image with
PAD_MODES = ('reflect', 'symmetric', 'edge', 'constant', 'wrap', 'linear_ramp', 'maximum', 'mean', 'median', 'minimum')


def _pad_to(img: np.ndarray, hw: tuple[int, int], mode: str = 'reflect') -> np.ndarray:
    """Pad symmetrically so ``img`` is at least ``hw`` (reflection; edge for a 1-pixel side)."""
    h, w = img.shape[:2]
    ph, pw = max(hw[0] - h, 0), max(hw[1] - w, 0)
    if ph == 0 and pw == 0:
        return img
    if mode == 'reflect' and (h == 1 or w == 1):
        mode = 'edge'  # reflection needs at least 2 pixels
    pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)) + ((0, 0), ) * (img.ndim - 2)
    return np.ascontiguousarray(np.pad(img, pad, mode=mode))


@TRANSFORMS.register_module()
class CenterCrop(BaseTransform):
    """Crop the centre ``size`` region; an image smaller than ``size`` is first padded by reflection.

    Args:
        size: ``int`` or ``(h, w)``.

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``. Added keys: ``crop_bbox`` ``(x0, y0, x1, y1)``
    in the (padded) image.
    """

    resolution_keys = ('size', )  # transforms/resolution.py: `size` sets the output resolution

    def __init__(self, size: SizeT) -> None:
        self.size = _pair(size)

    def transform(self, results: dict) -> dict:
        img = _pad_to(results['img'], self.size)
        h, w = img.shape[:2]
        ch, cw = self.size
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        results['img'] = np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw])
        results['img_shape'] = (ch, cw)
        results['crop_bbox'] = (x0, y0, x0 + cw, y0 + ch)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size})'


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random ``size`` window; an image smaller than ``size`` is first padded by reflection.

    Args:
        size: ``int`` or ``(h, w)``.
        pad_mode: ``np.pad`` mode used for small images (default ``reflect``).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``. Added keys: ``crop_bbox``.
    """

    resolution_keys = ('size', )  # transforms/resolution.py: `size` sets the output resolution

    def __init__(self, size: SizeT, pad_mode: str = 'reflect') -> None:
        self.size = _pair(size)
        if pad_mode not in PAD_MODES:  # else it would fail at the first small image, mid-training
            raise ValueError(f'pad_mode must be one of {PAD_MODES}, got {pad_mode!r}')
        self.pad_mode = pad_mode

    def transform(self, results: dict) -> dict:
        img = _pad_to(results['img'], self.size, self.pad_mode)
        h, w = img.shape[:2]
        ch, cw = self.size
        y0 = int(np.random.randint(0, h - ch + 1))
        x0 = int(np.random.randint(0, w - cw + 1))
        results['img'] = np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw])
        results['img_shape'] = (ch, cw)
        results['crop_bbox'] = (x0, y0, x0 + cw, y0 + ch)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, pad_mode={self.pad_mode!r})'


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Inception-style crop: random area fraction ``scale`` and aspect ratio ``ratio`` (log-uniform), resized to
    ``size``. Falls back to a centre crop of the clamped ratio after 10 failed attempts (as torchvision does).

    Args:
        size: output ``int`` or ``(h, w)``.
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio ``w / h``.
        interpolation: see :class:`ResizeShortSide` (default ``bicubic``, antialiased).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``. Added keys: ``crop_bbox``.
    """

    resolution_keys = ('size', )  # transforms/resolution.py: `size` sets the output resolution

    def __init__(self,
                 size: SizeT,
                 scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3. / 4., 4. / 3.),
                 interpolation: str = 'bicubic') -> None:
        self.size = _pair(size)
        if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f'need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], '
                             f'got scale={scale}, ratio={ratio}')
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.interpolation = _check_interp(interpolation)

    def _get_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * np.random.uniform(*self.scale)
            aspect = math.exp(np.random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                y0 = int(np.random.randint(0, h - ch + 1))
                x0 = int(np.random.randint(0, w - cw + 1))
                return x0, y0, cw, ch
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            cw, ch = w, h
        cw, ch = max(1, min(cw, w)), max(1, min(ch, h))
        return (w - cw) // 2, (h - ch) // 2, cw, ch

    def transform(self, results: dict) -> dict:
        img = results['img']
        x0, y0, cw, ch = self._get_box(*img.shape[:2])
        crop = np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw])
        results['img'] = resize_image(crop, self.size, self.interpolation)
        results['img_shape'] = self.size
        results['crop_bbox'] = (x0, y0, x0 + cw, y0 + ch)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class RandomFlip(_MMCVRandomFlip):
    """mmcv's ``RandomFlip`` registered in the transvae scope, defaulting to a horizontal flip with p = 0.5.

    Args:
        prob: flip probability (see mmcv).
        direction: ``horizontal`` (default), ``vertical``, ``diagonal`` or a list (see mmcv).
    """

    def __init__(self, prob: float = 0.5, direction: Union[str, Sequence[str]] = 'horizontal', **kwargs) -> None:
        super().__init__(prob=prob, direction=direction, **kwargs)

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        results['img'] = np.ascontiguousarray(results['img'])
        return results
