"""Image decoding that never raises: any file PIL cannot fully decode yields ``None`` (the dataset skips it).

Images too large to decode (decompression bombs: a 165 KB PNG can declare 12000 x 12000 pixels, 430 MB as RGB) are
refused from the header, before any pixel is decoded: :func:`check_image_pixels` compares the header's ``width x
height`` with a pixel limit (``max_pixels``, default :data:`DEFAULT_MAX_PIXELS`, PIL's own default threshold). The
limit is an argument (``LoadImageRGB(max_pixels=...)``, ``decode_image_rgb(path, max_pixels=...)``,
``transvae.apis.reconstruct(..., max_pixels=...)``), never PIL's process-wide ``Image.MAX_IMAGE_PIXELS``, which this
module reads but does not change. PIL's own check still runs inside ``Image.open`` with the global: an image above
twice that global is refused by PIL too (:class:`ImageTooLargeError` says so and how to raise it).
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image, ImageFile, ImageOps

from transvae.registry import TRANSFORMS
from transvae.utils.errors import UserInputError

# Modes whose alpha channel is composited on white.
_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')

#: Default pixel limit (``width * height``) of :func:`decode_image_rgb` / :class:`LoadImageRGB`: PIL's default
#: ``Image.MAX_IMAGE_PIXELS`` (``2**30 // 4 // 3``, about 9459 x 9459, 256 MiB as uint8 RGB), fixed here so that a
#: process that changed PIL's global does not change what the datasets accept.
DEFAULT_MAX_PIXELS: int = 89_478_485


class ImageTooLargeError(UserInputError, ValueError):
    """An image whose header declares more pixels than the limit allows; raised before any pixel is decoded."""


def check_image_pixels(size: tuple[int, int], max_pixels: Optional[int], source: str,
                       hint: str = 'max_pixels=...') -> None:
    """Refuse an image of ``size = (width, height)`` above ``max_pixels`` (``None``: no limit).

    Args:
        size: ``(width, height)`` as in PIL's ``Image.size`` (read from the header, nothing decoded).
        max_pixels: the limit on ``width * height``; ``None`` disables the check.
        source: the file or object named in the message.
        hint: how the caller raises the limit, quoted in the message.

    Raises:
        ImageTooLargeError: naming the file, its size, the limit and ``hint``.
    """
    if max_pixels is None:
        return
    w, h = int(size[0]), int(size[1])
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f'image too large to decode: {source} is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,} '
            f'pixels (a decompression-bomb guard; decoding would take about {w * h * 3 / 2**20:,.0f} MiB as RGB). '
            f'If the file is trusted, raise the limit with {hint} (None disables it).')


def _to_uint8_gray(arr: np.ndarray, bits: Optional[int] = None) -> np.ndarray:
    """Map a single-channel integer / float array (16-bit, 32-bit, float) to uint8.

    The bit depth comes from the file, never from the data: a dark 16-bit image (all values <= 255) is still
    16-bit. ``bits=16`` (PIL modes ``I;16*``) scales by ``255 / 65535``. ``bits=None`` (mode ``I``, 32-bit
    integers): the 16-bit range is assumed (PNG / TIFF 16-bit files decode to it) unless values exceed 65535, in
    which case the data is scaled by its maximum. Float data in [0, 1] is scaled by 255, any other float data is
    clipped to [0, 255].
    """
    if arr.dtype.kind == 'f':
        arr = np.nan_to_num(arr.astype(np.float64))
        if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
            arr = arr * 255.0
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    arr = arr.astype(np.float64)
    top = 65535.0
    if bits is None and arr.size and arr.max() > 65535:
        top = float(arr.max())
    elif bits is not None:
        top = float(2**bits - 1)
    return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)


def pil_to_rgb_array(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Convert a decoded PIL image of any common mode to a uint8 RGB array.

    Args:
        img: a loaded PIL image (any of ``1, L, LA, P (with or without transparency), PA, RGB, RGBA, CMYK, YCbCr,
            I;16*, I, F``).
        background: the colour alpha is composited on.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8, C-contiguous.
    """
    mode = img.mode
    if mode == 'P':
        img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
        mode = img.mode
    if mode in _ALPHA_MODES:
        rgba = img.convert('RGBA')
        canvas = Image.new('RGBA', rgba.size, background + (255, ))
        canvas.alpha_composite(rgba)
        img = canvas.convert('RGB')
    elif mode.startswith('I') or mode == 'F':
        gray = _to_uint8_gray(np.asarray(img), bits=16 if mode.startswith('I;16') else None)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    elif mode != 'RGB':
        img = img.convert('RGB')  # 1, L, CMYK, YCbCr, HSV ...
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr)


def _validate_max_pixels(max_pixels: Optional[int]) -> Optional[int]:
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, float, np.integer, np.floating)) \
            or not max_pixels >= 1 or not np.isfinite(max_pixels):
        raise ValueError(f'max_pixels must be a positive number of pixels or None (no limit), got {max_pixels!r}')
    return int(max_pixels)


def _pil_bomb_error(path: str, err: Exception, max_pixels: Optional[int], hint: str) -> ImageTooLargeError:
    """Our message for PIL's own ``DecompressionBombError`` (above twice its global ``Image.MAX_IMAGE_PIXELS``)."""
    m = re.search(r'\((\d+) pixels\)', str(err))
    pixels = int(m.group(1)) if m else None
    if pixels is not None and max_pixels is not None and pixels > max_pixels:
        return ImageTooLargeError(
            f'image too large to decode: {path!r} is {pixels:,} pixels, above the limit of {max_pixels:,} pixels '
            f'(a decompression-bomb guard). If the file is trusted, raise the limit with {hint} and PIL\'s '
            f'process-wide PIL.Image.MAX_IMAGE_PIXELS (now {Image.MAX_IMAGE_PIXELS}), which refuses it too.')
    return ImageTooLargeError(
        f'image too large to decode: {path!r} is refused by PIL\'s own decompression-bomb check ({err}); '
        f'max_pixels={max_pixels} allows it, but PIL\'s process-wide PIL.Image.MAX_IMAGE_PIXELS must be raised too '
        'to decode such a file.')


def decode_image_rgb(path: str, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                     hint: str = 'decode_image_rgb(path, max_pixels=...)',
                     draft_min_size: Optional[int] = None) -> np.ndarray:
    """Fully decode ``path`` to a uint8 RGB array, applying the EXIF orientation.

    Args:
        path: the image file.
        max_pixels: refuse images whose header declares more than this many pixels (``width * height``), before
            decoding; ``None``: no limit of ours (PIL's global ``Image.MAX_IMAGE_PIXELS`` check still applies).
        hint: how the caller raises ``max_pixels``, for the error message.
        draft_min_size: JPEG only: decode at the largest DCT reduction (1/2, 1/4, 1/8; PIL's ``Image.draft``)
            whose both sides stay at least this many pixels, so the short side is ``>= draft_min_size``; ``None``
            (default): full size. Other formats always decode at full size.

    Raises:
        ImageTooLargeError: the image is above ``max_pixels`` (or above twice PIL's global limit).
        OSError / ValueError / ...: on empty, truncated, corrupt or non-image files. A PIL warning about a
            truncated file is turned into an ``OSError``.
    """
    max_pixels = _validate_max_pixels(max_pixels)
    if os.path.getsize(path) == 0:
        raise OSError('empty file')
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # another module may have set it; a truncated file must fail here
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                opened = Image.open(path)  # reads the header only (and runs PIL's own bomb check)
            except Image.DecompressionBombError as e:
                raise _pil_bomb_error(path, e, max_pixels, hint) from e
            with opened as img:
                check_image_pixels(img.size, max_pixels, repr(path), hint)  # before any pixel is decoded
                if draft_min_size is not None and img.format == 'JPEG':
                    img.draft('RGB', (draft_min_size, draft_min_size))  # DCT scaling; both sides stay >= the size
                img.load()  # force the full decode: Image.open only reads the header
                img = ImageOps.exif_transpose(img)
                arr = pil_to_rgb_array(img)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    for w in caught:
        if 'truncat' in str(w.message).lower():
            raise OSError(f'truncated image: {w.message}')
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f'decoded to an empty array of shape {arr.shape}')
    return arr


@TRANSFORMS.register_module()
class LoadImageRGB(BaseTransform):
    """Decode ``results['img_path']`` with PIL into a uint8 RGB ``(H, W, 3)`` array.

    EXIF orientation is applied; gray, gray+alpha, RGBA (composited on white), palette (with transparency), 16-bit
    and CMYK files are converted to RGB. Decoding is complete (``img.load()``), so truncated files are caught here
    rather than in the model.

    Any failure (missing, empty, truncated, corrupt or non-image file, or one whose header declares more than
    ``max_pixels`` pixels: checked before decoding) returns ``None`` -- it never raises -- and writes the reason to
    ``results['decode_error']`` for the dataset's warning; the dataset skips and counts it.

    Required keys: ``img_path``. Added keys: ``img`` (uint8 ``(H, W, 3)``), ``img_shape`` and ``ori_shape``
    (``(H, W)``).

    Args:
        cache_mb: keep decoded images in memory, per process, up to this many MiB (first come, never evicted), for
            small sets re-read every few iterations (the bundled photos). Cached arrays are read-only: later
            transforms must copy, never write in place. Use with ``num_workers=0`` or persistent workers.
        max_pixels: skip files whose header declares more than this many pixels (``width * height``), before
            decoding them; the default :data:`DEFAULT_MAX_PIXELS` (about 9459 x 9459) bounds one decode to 256 MiB
            of RGB. ``None`` disables the limit (PIL's global ``Image.MAX_IMAGE_PIXELS`` check still applies).
    """

    def __init__(self, cache_mb: float = 0.0, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> None:
        super().__init__()
        self.max_pixels = _validate_max_pixels(max_pixels)
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: dict[str, np.ndarray] = {}
        self._cached_bytes = 0

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        img = self._cache.get(path)
        if img is None:
            try:
                img = self._decode(path)
            except Exception as e:  # noqa: BLE001 -- every decode failure is a skip, by design
                results['decode_error'] = f'{type(e).__name__}: {e}'
                return None
            if self._cached_bytes + img.nbytes <= self.cache_bytes:
                img.setflags(write=False)
                self._cache[path] = img
                self._cached_bytes += img.nbytes
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _decode(self, path: str) -> np.ndarray:
        """The full decode of one file (raises on failure; :meth:`transform` turns that into a skip)."""
        return decode_image_rgb(path, self.max_pixels, hint=f'{type(self).__name__}(max_pixels=...) in the pipeline')

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(cache_mb={self.cache_bytes / 2**20:g}, max_pixels={self.max_pixels})'


@TRANSFORMS.register_module()
class LoadImageRGBDraft(LoadImageRGB):
    """:class:`LoadImageRGB` that decodes a JPEG at a reduced scale when the pipeline resizes it down anyway.

    A JPEG whose short side is at least twice ``min_size`` is decoded by libjpeg's DCT scaling (PIL's
    ``Image.draft``) at 1/2, 1/4 or 1/8 of its size, the largest reduction that keeps both sides ``>= min_size``;
    the rest of the pipeline (``ResizeShortSide(size=min_size)`` and a crop) then resizes far fewer pixels. Other
    files, and JPEGs smaller than ``2 * min_size`` on the short side, decode exactly as with :class:`LoadImageRGB`.
    The DCT-scaled decode is itself a low-pass reduction, so the final crops differ from the full decode's by a few
    uint8 levels (``tools/analysis_tools/loader_throughput.py --compare`` measures it; README "Data loading").

    Only for pipelines that resize the short side down to ``min_size`` right after loading (the ImageNet training
    pipeline): a crop of the full-size image (``RandomResizedCrop``, a plain ``RandomCrop``) would lose detail.
    ``min_size`` is a resolution key (``transforms/resolution.py``), so ``--resolution`` moves it with the crop.

    Args:
        min_size: the short side the pipeline resizes to (``ResizeShortSide.size``).
        cache_mb, max_pixels: see :class:`LoadImageRGB`.
    """

    resolution_keys = ('min_size', )  # transforms/resolution.py: must follow ResizeShortSide's size

    def __init__(self, min_size: int, cache_mb: float = 0.0, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> None:
        if not isinstance(min_size, int) or isinstance(min_size, bool) or min_size <= 0:
            raise ValueError(f'min_size must be a positive int (the short side the pipeline resizes to), got '
                             f'{min_size!r}')
        super().__init__(cache_mb=cache_mb, max_pixels=max_pixels)
        self.min_size = min_size

    def _decode(self, path: str) -> np.ndarray:
        return decode_image_rgb(path, self.max_pixels, hint=f'{type(self).__name__}(max_pixels=...) in the pipeline',
                                draft_min_size=self.min_size)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_size={self.min_size}, cache_mb={self.cache_bytes / 2**20:g}, '
                f'max_pixels={self.max_pixels})')
