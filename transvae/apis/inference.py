"""Load a VAE from a config (+ checkpoint) and encode / decode / reconstruct images of any size, tiled when asked.

Images go in and come out in ``[0, 1]``; the model works in ``[-1, 1]`` internally.

The input contract (one owner: :func:`to_image_tensor` for images, :func:`to_latent_tensor` for latents; ``encode``,
``decode`` and ``reconstruct`` enforce it identically, before the model runs, with a ``ValueError`` / ``TypeError`` /
``FileNotFoundError`` that says what was expected):

* kinds: a ``torch`` tensor, channels-first ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``; a ``numpy`` array,
  channels-last ``(H, W)``, ``(H, W, C)`` or ``(B, H, W, C)``; a ``PIL.Image`` (any mode: 16-bit scaled by its bit
  depth); a file path (``str`` / ``os.PathLike``), decoded as the datasets decode it (``LoadImageRGB``: EXIF
  orientation, 16-bit, CMYK, palette, first frame); a list of any of these with one size (stacked into a batch).
* channels ``C``: 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA). Alpha is composited on white on every path, as
  files are: ``uint8`` arrays and tensors by the same PIL code as files (identical results), float ones by
  ``rgb * a + (1 - a)`` (within PIL's 1/255 rounding of that).
* dtypes and ranges: ``uint8`` is ``0..255``; ``uint16`` is ``0..65535``; floating point (``float16``, ``bfloat16``,
  ``float32``, ``float64``) must lie in ``[0, 1]``, within ``RANGE_TOL = 1e-3`` (or one unit in the last place at
  1.0 for ``bfloat16``) for rounding; values within the tolerance are clamped, anything further out is refused:
  ``0..255`` floats (told to divide by 255 or pass ``uint8``), ``[-1, 1]`` floats (told to pass ``(x + 1) / 2``) and
  resized images that overshoot (told to ``clamp(0, 1)``). The rule is the documented range, not a guess from the
  data, so it cannot refuse an image that keeps to it (up to rounding); it refuses every ``0..255`` or ``[-1, 1]``
  float image except one whose values all happen to lie in ``[0, 1]`` (an almost black ``0..255`` image: nothing
  can tell those apart). Other integer dtypes and ``bool`` are a ``TypeError``.
* values: NaN / Inf anywhere (images or latents) is a ``ValueError``; empty images or batches too. A finite input on
  which the model itself returns NaN / Inf (non-finite weights) is a ``ValueError`` too, never a NaN image.
* size: a file or a PIL image whose header declares more than ``max_pixels`` pixels (``width * height``; default
  ``DEFAULT_MAX_PIXELS`` = 89,478,485, PIL's default threshold, about 9459 x 9459) is refused before it is decoded
  (a decompression-bomb guard: a 165 KB PNG can declare 12000 x 12000); ``max_pixels=None`` or a larger number on
  ``encode`` / ``reconstruct`` / ``to_image_tensor`` raises it. Arrays and tensors are already in memory: not limited.
* latents (``decode``): a float tensor or array ``(B, d, h, w)`` or ``(d, h, w)``, finite, with ``d`` the model's
  ``latent_channels``; a posterior object is refused (pass ``.mode()``); ``out_size`` only crops, so it may not
  exceed the decoded ``(f * h, f * w)``.

Outputs keep the batch layout of the input: a single image (``(C, H, W)``, ``(H, W)``, an HWC array, PIL or a path)
gives ``(3, H, W)``, a batch gives ``(B, 3, H, W)``; always a float tensor in ``[0, 1]`` on the model's device.

``tile`` / ``overlap`` / ``memory_budget_mb`` / ``tile_mode`` / ``blend`` are handed to the model's
``tiled_encode`` / ``tiled_decode`` (:mod:`transvae.models.autoencoders.tiling`): ``tile=None`` (and no budget) uses
the model as it is (tiled only if ``model.enable_tiling`` was called); an ``int`` is the tile size in pixels;
``'auto'`` picks whole-image or the largest tile whose estimated activation memory fits ``memory_budget_mb``.
``tile_mode='exact'`` (the default) equals the whole-image result; ``'blend'`` is the approximate mode.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from transvae.datasets.transforms.loading import DEFAULT_MAX_PIXELS  # noqa: E402
from transvae.models.distributions import DiagonalGaussian  # noqa: E402

TileArg = int | str | None


def init_model(config: str | Config, checkpoint: str | None = None, device: str | torch.device = 'cpu',
               cfg_options: dict | None = None, preset: str | None = None, trusted: bool | None = None) -> nn.Module:
    """Build the ``model`` of a config, load a checkpoint and put it in eval mode.

    Args:
        config: config file path or :class:`mmengine.Config`.
        checkpoint: checkpoint path: an mmengine ``.pth`` with ``state_dict`` / ``meta``, a plain state dict, or a
            ``.safetensors`` export (``tools/model_converters/to_safetensors.py``); ``None`` keeps the random
            initialisation. Read with ``weights_only=True`` (``transvae.engine.checkpoint_io``); a checkpoint that
            does not fit the config's model raises ``CheckpointMismatchError`` naming the config it was trained
            with.
        device: target device.
        cfg_options: overrides (dotted keys), e.g. ``{'model.arch.widths': [...]}``; a misspelt top-level key is
            refused, as ``--cfg-options`` is (:func:`transvae.apis.entry.load_config`).
        preset: merge ``cfg.presets[preset]`` (e.g. ``'cpu'``) before ``cfg_options``.
        trusted: allow a checkpoint that needs arbitrary unpickling (it can run code): only for files you trust.
            ``None`` (default): the innermost ``transvae.engine.checkpoint_io.trusted_checkpoints`` block decides
            (a tool's ``--trust-checkpoint``); outside one, not trusted.

    Returns:
        The model in eval mode; ``model.cfg`` holds the config used.
    """
    from transvae.apis.entry import build_model, load_config
    cfg = load_config(config, preset, cfg_options)
    model = build_model(cfg, checkpoint, device, trusted=trusted, allow_partial=False,
                        tool_hint='`init_model({config!r}, {ckpt!r})`')
    model.cfg = cfg
    return model


# ---------------------------------------------------------------------------------------------------------------------
# the input contract (module docstring): every image and latent that enters the API passes through here
#: Float images may leave ``[0, 1]`` by this much (rounding); more is refused. Half-precision dtypes get one unit in
#: the last place at 1.0 instead when that is larger (``bfloat16``: 2**-7).
RANGE_TOL: float = 1e-3

_MAX_PIXELS_HINT = 'max_pixels=N in transvae.apis.encode / reconstruct / to_image_tensor'


def _range_tol(dtype: torch.dtype) -> float:
    return max(RANGE_TOL, float(torch.finfo(dtype).eps))


def _as_bchw(img: Any, max_pixels: int | None) -> tuple[Tensor, bool]:
    """One image or batch of any accepted kind -> ``(B, C, H, W)`` in its own dtype, and whether it was single.

    Files and PIL images become uint8 RGB (decoded as the datasets decode them, alpha composited on white, after the
    ``max_pixels`` check of the header); numpy arrays are channels-last and become channels-first; tensors are
    channels-first already. Nothing is scaled or range-checked here: :func:`_normalise` does that for all kinds.
    """
    from PIL import Image

    from transvae.datasets.transforms.loading import check_image_pixels, decode_image_rgb, pil_to_rgb_array
    if isinstance(img, (str, os.PathLike)):
        path = os.fspath(img)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'image file not found: {path!r}')
        img = decode_image_rgb(path, max_pixels, hint=_MAX_PIXELS_HINT)  # EXIF, 16-bit, CMYK, alpha, palette
    elif isinstance(img, Image.Image):
        check_image_pixels(img.size, max_pixels, f'the PIL image (mode {img.mode})', _MAX_PIXELS_HINT)
        img = pil_to_rgb_array(img)  # bit-depth aware (I;16 is scaled, not saturated); alpha on white
    if isinstance(img, np.ndarray):
        a = img
        if a.size == 0:
            raise ValueError(f'empty image array of shape {a.shape}')
        if a.ndim not in (2, 3, 4) or (a.ndim > 2 and a.shape[-1] not in (1, 2, 3, 4)):
            hint = ' (channels first? numpy images are channels-last: a.transpose(1, 2, 0), batches ' \
                'a.transpose(0, 2, 3, 1))' if a.ndim > 2 and a.shape[-3] in (1, 2, 3, 4) else ''
            raise ValueError(f'numpy images must be (H, W), (H, W, C) or (B, H, W, C) with C = 1 (gray), 2 (gray + '
                             f'alpha), 3 (RGB) or 4 (RGBA), got shape {a.shape}{hint}')
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder('='))
        if a.dtype.kind not in 'uif':
            raise TypeError(f'unsupported numpy image dtype {a.dtype}: give uint8 (0..255), uint16 (0..65535) or '
                            'float (0..1)')
        single = a.ndim < 4
        a = a.reshape((1, ) + a.shape[:2] + (a.shape[2] if a.ndim == 3 else 1, )) if single else a
        a = np.ascontiguousarray(a.transpose(0, 3, 1, 2))
        return torch.from_numpy(a if a.flags.writeable else a.copy()), single
    if isinstance(img, Tensor):
        t = img
        if t.dim() not in (2, 3, 4) or (t.dim() > 2 and t.shape[-3] not in (1, 2, 3, 4)):
            hint = ' (channels last? image tensors are channels-first: t.permute(2, 0, 1), batches ' \
                't.permute(0, 3, 1, 2))' if t.dim() > 2 and t.shape[-1] in (1, 2, 3, 4) else ''
            raise ValueError(f'image tensors must be (H, W), (C, H, W) or (B, C, H, W) with C = 1 (gray), 2 (gray + '
                             f'alpha), 3 (RGB) or 4 (RGBA), got shape {tuple(t.shape)}{hint}')
        single = t.dim() < 4
        return (t.reshape((1, 1) + tuple(t.shape)) if t.dim() == 2 else t.unsqueeze(0) if single else t), single
    raise TypeError(f'unsupported image type {type(img).__name__}: give a tensor, a numpy array, a PIL image, '
                    'a file path or a list of them')


def _normalise(t: Tensor) -> Tensor:
    """``(B, C, H, W)`` of an accepted dtype -> float ``(B, 3, H, W)`` in ``[0, 1]`` (the contract's one owner).

    uint8 images with alpha are composited by PIL exactly as files are (``pil_to_rgb_array``); float ones by
    ``rgb * a + (1 - a)``, the same formula without PIL's rounding to 1/255. The result is contiguous (standard
    layout), so the same image gives bit-identical results whichever kind it came as.
    """
    from PIL import Image

    from transvae.datasets.transforms.loading import pil_to_rgb_array
    if t.numel() == 0:
        raise ValueError(f'empty image of shape {tuple(t.shape)}')
    c = t.shape[1]
    if t.dtype == torch.uint8:
        if c in (2, 4):  # alpha: composited by the very code that composites files
            hwc = t.detach().cpu().permute(0, 2, 3, 1).numpy()
            mode = 'LA' if c == 2 else 'RGBA'
            rgb = np.stack([pil_to_rgb_array(Image.fromarray(np.ascontiguousarray(i), mode)) for i in hwc])
            t = torch.from_numpy(rgb).permute(0, 3, 1, 2).to(t.device)
        t = t.float().div_(255.0)
        return t.expand(-1, 3, -1, -1).contiguous() if t.shape[1] == 1 else t.contiguous()
    if t.dtype == torch.uint16:
        t = t.float() / 65535.0
    elif not t.is_floating_point():
        raise TypeError(f'integer images must be uint8 (0..255) or uint16 (0..65535), got {t.dtype}: convert 0..255 '
                        'integers to uint8 (or to float and divide by 255)')
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f'the image contains {bad} NaN / Inf values of {t.numel()}; the model would return NaN')
    del finite
    lo, hi = (float(v) for v in torch.aminmax(t))
    tol = _range_tol(t.dtype)
    if lo < -tol or hi > 1 + tol:
        likely = ('0..255 data' if hi > 2 and lo >= -tol else
                  '[-1, 1] data (the model\'s internal range)' if lo < -tol and hi <= 1 + tol else
                  'a resize that overshoots (bicubic, Lanczos)' if hi <= 2 and lo >= -0.5 else 'data in another range')
        raise ValueError(f'float images must lie in [0, 1] (tolerance {tol:g}); this one spans [{lo:.4g}, {hi:.4g}]: '
                         f'{likely}? For 0..255 data divide by 255 (x / 255) or pass uint8; for [-1, 1] data pass '
                         '(x + 1) / 2; after a resize that overshoots, x.clamp(0, 1).')
    if lo < 0 or hi > 1:
        t = t.clamp(0, 1)  # rounding within the tolerance
    if c in (2, 4):
        alpha = t[:, -1:]
        t = t[:, :-1] * alpha + (1 - alpha)
    # one memory layout: channels-last strides would pick other conv kernels (results differing in the last bits)
    return t.expand(-1, 3, -1, -1).contiguous() if t.shape[1] == 1 else t.contiguous()


def _one_to_tensor(img: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[Tensor, bool]:
    """One image or batch -> float ``(B, 3, H, W)`` in [0, 1] and whether it was a single image.

    Raises ``ValueError`` (empty, non-finite, out of range, wrong layout, too many pixels), ``TypeError``
    (unsupported type or dtype) or ``FileNotFoundError``, before the model sees anything.
    """
    t, single = _as_bchw(img, max_pixels)
    return _normalise(t), single


def to_image_tensor(images: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[Tensor, bool]:
    """Convert any accepted image input (module docstring) to a float ``(B, 3, H, W)`` tensor in ``[0, 1]``.

    Args:
        images: a tensor, numpy array, PIL image, file path or a list of them (module docstring: the contract).
        max_pixels: files and PIL images whose header declares more pixels are refused before decoding
            (``None``: no limit); arrays and tensors are already in memory and not limited.

    Returns:
        The tensor and ``True`` when the input was a single image.
    """
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError('empty list of images')
        parts = [_one_to_tensor(i, max_pixels)[0] for i in images]
        sizes = {tuple(p.shape[-2:]) for p in parts}
        if len(sizes) > 1:
            raise ValueError(f'a list of images must share one size to be batched, got {sorted(sizes)}')
        return torch.cat(parts, dim=0), False
    return _one_to_tensor(images, max_pixels)


def to_latent_tensor(model: nn.Module, latents: Any) -> tuple[Tensor, bool]:
    """Check latents for ``decode``: float ``(B, d, h, w)`` (or ``(d, h, w)``), finite, ``d`` the model's channels.

    Args:
        model: the VAE (its ``latent_channels`` is compared when it has one).
        latents: a float tensor or numpy array ``(B, d, h, w)`` / ``(d, h, w)``.

    Returns:
        ``(B, d, h, w)`` (on the input's device) and ``True`` when the input was a single latent.
    """
    if isinstance(latents, DiagonalGaussian):
        raise TypeError('decode takes latents, not a posterior: pass posterior.mode() (the mean) or '
                        'posterior.sample()')
    if isinstance(latents, np.ndarray):
        if latents.dtype.kind != 'f':
            raise TypeError(f'latents must be floating point, got a numpy array of {latents.dtype}')
        latents = torch.from_numpy(np.array(latents, dtype=latents.dtype.newbyteorder('='), copy=True))
    if not isinstance(latents, Tensor):
        raise TypeError(f'latents must be a tensor (or numpy array) (B, d, h, w) or (d, h, w), '
                        f'got {type(latents).__name__}')
    if latents.dim() not in (3, 4):
        raise ValueError(f'latents must be (B, d, h, w) or (d, h, w), got shape {tuple(latents.shape)}')
    if latents.numel() == 0:
        raise ValueError(f'empty latents of shape {tuple(latents.shape)}')
    if not latents.is_floating_point():
        raise TypeError(f'latents must be floating point, got {latents.dtype}')
    single = latents.dim() == 3
    z = latents.unsqueeze(0) if single else latents
    d = getattr(model, 'latent_channels', None)
    if d is not None and z.shape[1] != int(d):
        raise ValueError(f'latents have {z.shape[1]} channels (shape {tuple(latents.shape)}), but the model decodes '
                         f'{int(d)}: latents are channels-first (B, d, h, w) with d = the latent_channels of the '
                         'model that encoded them')
    _check_finite(z, 'the latents', 'the decoder would return NaN')
    return z, single


def _check_finite(t: Tensor, what: str, why: str) -> None:
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        raise ValueError(f'{what} contain {int((~finite).sum())} NaN / Inf values of {t.numel()}; {why}')


def _check_out_size(model: nn.Module, z: Tensor, out_size: Sequence[int] | None) -> tuple[int, int] | None:
    """``out_size`` as two positive ints no larger than the decoded size ``(f*h, f*w)``."""
    if out_size is None:
        return None
    if isinstance(out_size, (str, bytes)) or not isinstance(out_size, Sequence) or len(out_size) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0 for v in out_size):
        raise ValueError(f'out_size must be two positive ints (H, W), got {out_size!r}')
    size = (int(out_size[0]), int(out_size[1]))
    f = getattr(model, 'downsample_factor', None)
    if f is not None:
        full = (int(f) * z.shape[-2], int(f) * z.shape[-1])
        if size[0] > full[0] or size[1] > full[1]:
            raise ValueError(f'out_size {size} is larger than the decoded image {full} (latents {tuple(z.shape[-2:])}'
                             f' x factor {int(f)}); out_size only crops')
    return size


# ---------------------------------------------------------------------------------------------------------------------
# tiling arguments
def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def _tile_kwargs(tile: TileArg, overlap: int | None, memory_budget_mb: float | None, tile_mode: str | None,
                 blend: str | None) -> dict | None:
    """Keyword arguments of ``model.tiled_encode`` / ``tiled_decode``; ``None`` when no tiling was asked for."""
    if tile is None and memory_budget_mb is None:
        return None
    if tile is not None and tile != 'auto' and (isinstance(tile, (bool, str)) or not isinstance(tile, (int, np.integer))
                                                or tile <= 0):
        raise ValueError(f"tile must be None, 'auto' or a positive int, got {tile!r}")
    return dict(tile='auto' if tile is None else (tile if tile == 'auto' else int(tile)), overlap=overlap,
                memory_budget_mb=memory_budget_mb, mode=tile_mode, ramp=blend)


# ---------------------------------------------------------------------------------------------------------------------
# public API
def _encode_tensor(model: nn.Module, x: Tensor, kw: dict | None) -> DiagonalGaussian:
    """Encode a checked ``(B, 3, H, W)`` image in ``[0, 1]``; refuse a non-finite posterior (bad weights)."""
    device, dtype = _device_dtype(model)
    x = x.to(device=device, dtype=dtype) * 2 - 1
    posterior = model.encode(x) if kw is None else model.tiled_encode(x, **kw)
    parts = [posterior] if isinstance(posterior, Tensor) else \
        [getattr(posterior, n) for n in ('mean', 'logvar') if isinstance(getattr(posterior, n, None), Tensor)]
    for part in parts:
        _check_finite(part, "the encoder's outputs", 'the input is finite, so the model (its weights or dtype) is at '
                      'fault')
    return posterior


def _decode_tensor(model: nn.Module, z: Tensor, out_size: tuple[int, int] | None, kw: dict | None) -> Tensor:
    """Decode checked latents ``(B, d, h, w)`` to ``[0, 1]``; refuse a non-finite result (bad weights)."""
    device, dtype = _device_dtype(model)
    z = z.to(device=device, dtype=dtype)
    x = model.decode(z, out_size=out_size) if kw is None else model.tiled_decode(z, out_size=out_size, **kw)
    _check_finite(x, "the decoder's outputs", 'the latents are finite, so the model (its weights or dtype) is at fault')
    return ((x.float() + 1) / 2).clamp_(0, 1)


@torch.no_grad()
def encode(model: nn.Module, images: Any, tile: TileArg = None, overlap: int | None = None,
           memory_budget_mb: float | None = None, blend: str | None = None,
           tile_mode: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DiagonalGaussian:
    """Posterior of ``images`` (any accepted input, ``[0, 1]``) over latents ``(B, d, ceil(H/f), ceil(W/f))``.

    Use ``.mode()`` for the posterior mean. Tiling arguments and ``max_pixels``: see the module docstring.
    """
    kw = _tile_kwargs(tile, overlap, memory_budget_mb, tile_mode, blend)
    x, _ = to_image_tensor(images, max_pixels)
    return _encode_tensor(model, x, kw)


@torch.no_grad()
def decode(model: nn.Module, latents: Tensor, tile: TileArg = None, overlap: int | None = None,
           memory_budget_mb: float | None = None, out_size: Sequence[int] | None = None,
           blend: str | None = None, tile_mode: str | None = None) -> Tensor:
    """Images in ``[0, 1]`` from latents ``(B, d, h, w)`` or ``(d, h, w)``, cropped to ``out_size`` when given.

    The latents must be floating point, finite, channels-first with ``d`` = the model's ``latent_channels``
    (:func:`to_latent_tensor`); ``out_size`` may only crop. ``tile`` / ``overlap`` are in image pixels.
    """
    kw = _tile_kwargs(tile, overlap, memory_budget_mb, tile_mode, blend)
    z, single = to_latent_tensor(model, latents)
    x = _decode_tensor(model, z, _check_out_size(model, z, out_size), kw)
    return x[0] if single else x


@torch.no_grad()
def reconstruct(model: nn.Module, images: Any, tile: TileArg = None, overlap: int | None = None,
                memory_budget_mb: float | None = None, sample: bool = False, blend: str | None = None,
                tile_mode: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Tensor:
    """Encode and decode ``images`` (any accepted input, ``[0, 1]``); returns ``[0, 1]`` at the input size.

    The posterior mean is decoded unless ``sample``. Untiled it equals ``model.reconstruct`` (mapped to ``[0, 1]``).
    ``tile='auto'`` chooses encode and decode tiles separately (the decoder usually needs more memory).
    """
    kw = _tile_kwargs(tile, overlap, memory_budget_mb, tile_mode, blend)
    x, single = to_image_tensor(images, max_pixels)
    posterior = _encode_tensor(model, x, kw)
    z = posterior.sample() if sample else posterior.mode()
    out = _decode_tensor(model, z, tuple(x.shape[-2:]), kw)
    return out[0] if single else out


__all__ = ['init_model', 'encode', 'decode', 'reconstruct', 'to_image_tensor', 'to_latent_tensor', 'RANGE_TOL']
