"""Load a VAE from a config (+ checkpoint) and encode / decode / reconstruct images of any size, tiled when asked.

Images go in and come out in ``[0, 1]``; the model works in ``[-1, 1]`` internally. Accepted image inputs:

* a float tensor ``(B, 3, H, W)`` or ``(3, H, W)`` in ``[0, 1]``;
* a ``uint8`` tensor of the same layouts (``0..255``);
* a ``numpy`` array ``(H, W, 3)`` or ``(B, H, W, 3)`` (``uint8`` ``0..255`` or float ``[0, 1]``), or ``(H, W)`` gray;
* a ``PIL.Image`` (any mode: 16-bit scaled by its bit depth, alpha composited on white);
* a file path (``str`` / ``os.PathLike``), decoded as the datasets do (EXIF orientation applied);
* a list of any of the above with one size (stacked into a batch).

Outputs keep the batch layout of the input: a single image (``(3, H, W)``, HWC array or PIL) gives ``(3, H, W)``,
a batch gives ``(B, 3, H, W)``; always a float tensor in ``[0, 1]`` on the model's device.

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

from transvae.models.distributions import DiagonalGaussian  # noqa: E402

TileArg = int | str | None


def init_model(config: str | Config, checkpoint: str | None = None, device: str | torch.device = 'cpu',
               cfg_options: dict | None = None, preset: str | None = None, trusted: bool = False) -> nn.Module:
    """Build the ``model`` of a config, load a checkpoint and put it in eval mode.

    Args:
        config: config file path or :class:`mmengine.Config`.
        checkpoint: checkpoint path: an mmengine ``.pth`` with ``state_dict`` / ``meta``, a plain state dict, or a
            ``.safetensors`` export (``tools/model_converters/to_safetensors.py``); ``None`` keeps the random
            initialisation. Read with ``weights_only=True`` (``transvae.engine.checkpoint_io``); a checkpoint that
            does not fit the config's model raises ``CheckpointMismatchError`` naming the config it was trained
            with.
        device: target device.
        cfg_options: ``Config.merge_from_dict`` overrides, e.g. ``{'model.arch.widths': [...]}``.
        preset: merge ``cfg.presets[preset]`` (e.g. ``'cpu'``) before ``cfg_options``.
        trusted: allow a checkpoint that needs arbitrary unpickling (it can run code): only for files you trust.

    Returns:
        The model in eval mode; ``model.cfg`` holds the config used.
    """
    from transvae.engine.checkpoint_compat import check_checkpoint_fits, config_name_of, strip_prefix
    from transvae.engine.checkpoint_io import load_checkpoint_file, state_dict_of
    from transvae.registry import MODELS
    from transvae.utils import register_all_modules

    if isinstance(config, (str, os.PathLike)):
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = config.copy() if hasattr(config, 'copy') else config
    else:
        raise TypeError(f'config must be a path or an mmengine Config, got {type(config).__name__}')
    if preset:
        from transvae.engine.utils import apply_preset
        apply_preset(cfg, preset)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_all_modules()
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    model_cfg.pop('init_cfg', None) if checkpoint else None  # no pretrained init when weights follow
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        ckpt = load_checkpoint_file(checkpoint, map_location='cpu', trusted=trusted)
        check_checkpoint_fits(model, ckpt, str(checkpoint), config_name_of(cfg), allow_partial=False,
                              tool_hint='`init_model({config!r}, {ckpt!r})`')
        model.load_state_dict(strip_prefix(state_dict_of(ckpt)), strict=True)
    model.cfg = cfg
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------------------------
# image conversion
def _one_to_tensor(img: Any) -> tuple[Tensor, bool]:
    """One image or batch -> float ``(B, 3, H, W)`` in [0, 1] and whether it was a single image.

    Raises ``ValueError`` for empty or non-finite images and ``TypeError`` for unsupported types, before the model
    sees them.
    """
    from PIL import Image

    from transvae.datasets.transforms.loading import decode_image_rgb, pil_to_rgb_array
    if isinstance(img, (str, os.PathLike)):
        if not os.path.isfile(img):
            raise FileNotFoundError(f'image file not found: {os.fspath(img)!r}')
        img = decode_image_rgb(os.fspath(img))  # EXIF orientation, 16-bit, CMYK, alpha, palette, first frame
    elif isinstance(img, Image.Image):
        img = pil_to_rgb_array(img)  # bit-depth aware (I;16 is scaled, not saturated); alpha on white
    if isinstance(img, np.ndarray):
        a = img
        if a.size == 0:
            raise ValueError(f'empty image array of shape {a.shape}')
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim not in (3, 4) or a.shape[-1] not in (1, 3, 4):
            raise ValueError(f'numpy images must be (H, W[, 3]) or (B, H, W, 3), got {a.shape}')
        if a.shape[-1] == 4:
            a = a[..., :3]
        if a.shape[-1] == 1:
            a = np.repeat(a, 3, axis=-1)
        if a.dtype == np.uint16:
            a = a.astype(np.float32) / 65535.0
        a = np.ascontiguousarray(a)
        t = torch.from_numpy(a if a.flags.writeable else a.copy())
        single = t.dim() == 3
        t = t.unsqueeze(0) if single else t
        t = t.permute(0, 3, 1, 2)
    elif isinstance(img, Tensor):
        t = img
        single = t.dim() == 3
        t = t.unsqueeze(0) if single else t
        if t.dim() != 4:
            raise ValueError(f'image tensors must be (3, H, W) or (B, 3, H, W), got {tuple(img.shape)}')
    else:
        raise TypeError(f'unsupported image type {type(img).__name__}: give a tensor, a numpy array, a PIL image, '
                        'a file path or a list of them')
    if t.numel() == 0:
        raise ValueError(f'empty image of shape {tuple(t.shape)}')
    if t.shape[1] != 3:
        raise ValueError(f'images must have 3 channels, got shape {tuple(t.shape)}')
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif not t.is_floating_point():
        raise TypeError(f'integer images must be uint8 (or uint16 numpy arrays), got {t.dtype}')
    elif not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f'the image contains {bad} NaN / Inf values of {t.numel()}; the model would return NaN')
    return t, single


def to_image_tensor(images: Any) -> tuple[Tensor, bool]:
    """Convert any accepted image input (module docstring) to a float ``(B, 3, H, W)`` tensor in ``[0, 1]``.

    Returns the tensor and ``True`` when the input was a single image.
    """
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError('empty list of images')
        parts = [_one_to_tensor(i)[0] for i in images]
        sizes = {tuple(p.shape[-2:]) for p in parts}
        if len(sizes) > 1:
            raise ValueError(f'a list of images must share one size to be batched, got {sorted(sizes)}')
        return torch.cat(parts, dim=0), False
    return _one_to_tensor(images)


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
@torch.no_grad()
def encode(model: nn.Module, images: Any, tile: TileArg = None, overlap: int | None = None,
           memory_budget_mb: float | None = None, blend: str | None = None,
           tile_mode: str | None = None) -> DiagonalGaussian:
    """Posterior of ``images`` (any accepted input, ``[0, 1]``) over latents ``(B, d, ceil(H/f), ceil(W/f))``.

    Use ``.mode()`` for the posterior mean. Tiling arguments: see the module docstring.
    """
    x, _ = to_image_tensor(images)
    device, dtype = _device_dtype(model)
    x = x.to(device=device, dtype=dtype) * 2 - 1
    kw = _tile_kwargs(tile, overlap, memory_budget_mb, tile_mode, blend)
    return model.encode(x) if kw is None else model.tiled_encode(x, **kw)


@torch.no_grad()
def decode(model: nn.Module, latents: Tensor, tile: TileArg = None, overlap: int | None = None,
           memory_budget_mb: float | None = None, out_size: Sequence[int] | None = None,
           blend: str | None = None, tile_mode: str | None = None) -> Tensor:
    """Images in ``[0, 1]`` from latents ``(B, d, h, w)`` or ``(d, h, w)``, cropped to ``out_size`` when given.

    ``tile`` / ``overlap`` are in image pixels.
    """
    single = latents.dim() == 3
    z = latents.unsqueeze(0) if single else latents
    device, dtype = _device_dtype(model)
    z = z.to(device=device, dtype=dtype)
    kw = _tile_kwargs(tile, overlap, memory_budget_mb, tile_mode, blend)
    x = model.decode(z, out_size=out_size) if kw is None else model.tiled_decode(z, out_size=out_size, **kw)
    x = ((x.float() + 1) / 2).clamp_(0, 1)
    return x[0] if single else x


@torch.no_grad()
def reconstruct(model: nn.Module, images: Any, tile: TileArg = None, overlap: int | None = None,
                memory_budget_mb: float | None = None, sample: bool = False, blend: str | None = None,
                tile_mode: str | None = None) -> Tensor:
    """Encode and decode ``images`` (any accepted input, ``[0, 1]``); returns ``[0, 1]`` at the input size.

    The posterior mean is decoded unless ``sample``. Untiled it equals ``model.reconstruct`` (mapped to ``[0, 1]``).
    ``tile='auto'`` chooses encode and decode tiles separately (the decoder usually needs more memory).
    """
    x, single = to_image_tensor(images)
    size = tuple(x.shape[-2:])
    posterior = encode(model, x, tile=tile, overlap=overlap, memory_budget_mb=memory_budget_mb, blend=blend,
                       tile_mode=tile_mode)
    z = posterior.sample() if sample else posterior.mode()
    out = decode(model, z, tile=tile, overlap=overlap, memory_budget_mb=memory_budget_mb, out_size=size,
                 blend=blend, tile_mode=tile_mode)
    return out[0] if single else out


__all__ = ['init_model', 'encode', 'decode', 'reconstruct', 'to_image_tensor']
