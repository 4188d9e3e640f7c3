"""Tiled encoding / decoding with bounded memory, and the activation-memory estimate that picks the tile size.

Tiles overlap; inside an overlap the two (or more) tiles are blended with ramps that fall to ~0 at a tile's inner
edge (``linear`` or ``cosine``), so every output pixel is a convex combination of tile outputs and there is no hard
seam. Tiles touching the image border are not ramped on that side. Tiling is valid for the Transformer stages
because their 2D RoPE uses integer positions of the actual token grid (a tile is just a smaller image), but it
is an approximation: a tile's global attention and conv receptive field only see the tile. With one tile covering
the whole input both functions return exactly what the untiled encoder / decoder return.

Memory model (:func:`estimate_peak_memory`): the peak bytes of the live tensors during one encoder or decoder call,
measured on a few tiny inputs with a tensor-allocation tracker (``TorchDispatchMode``) and fitted as
``a·B·P + b·B·P² + c`` (``P`` pixels). The linear term is the activations; the quadratic term appears only where
attention materialises the ``N×N`` scores (the math SDPA kernel); PyTorch's CPU flash kernel keeps it at 0
(measured: torch 2.14 runs fp32 and bf16 CPU self-attention through
``aten._scaled_dot_product_flash_attention_for_cpu``). Model weights are not included.
"""
from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from transvae.models.autoencoders.vae import pad_to_multiple
from transvae.models.distributions import DiagonalGaussian

BLEND_MODES = ('linear', 'cosine')


# ---------------------------------------------------------------------------------------------------------------------
# tile geometry and blending weights
def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` with step ``stride`` covering ``[0, length)``; the last one is
    shifted back to end exactly at ``length`` (so it may overlap its neighbour by more than the nominal overlap)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(n: int, mode: str) -> Tensor:
    """Rising ramp of ``n`` values strictly inside (0, 1): ``r[i] + r[n-1-i] == 1``."""
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    if mode == 'linear':
        return t
    if mode == 'cosine':
        return 0.5 - 0.5 * torch.cos(math.pi * t)
    raise ValueError(f"blend mode must be one of {BLEND_MODES}, got '{mode}'")


def blend_weights_1d(starts: Sequence[int], tile: int, length: int, mode: str = 'linear') -> list[Tensor]:
    """Per-tile 1D weights: ramp up over the overlap with the previous tile, down over the next one.

    The ramps of two neighbours cover the same span, so they sum to one there (partition of unity when at most two
    tiles overlap; the blend divides by the weight sum anyway).
    """
    out = []
    for i, s in enumerate(starts):
        n = min(tile, length - s)
        w = torch.ones(n, dtype=torch.float64)
        if i > 0:
            lo = starts[i - 1] + min(tile, length - starts[i - 1]) - s  # overlap with the previous tile
            if lo > 0:
                w[:lo] = torch.minimum(w[:lo], _ramp(lo, mode))
        if i < len(starts) - 1:
            hi = s + n - starts[i + 1]  # overlap with the next tile
            if hi > 0:
                w[n - hi:] = torch.minimum(w[n - hi:], _ramp(hi, mode).flip(0))
        out.append(w)
    return out


def _check_tile(tile: int, overlap: int, factor: int, what: str) -> None:
    if tile <= 0 or tile % factor:
        raise ValueError(f'{what} tile size {tile} must be a positive multiple of {factor}')
    if overlap < 0 or overlap % factor:
        raise ValueError(f'{what} overlap {overlap} must be a non-negative multiple of {factor}')
    if overlap >= tile:
        raise ValueError(f'{what} overlap {overlap} must be smaller than the tile size {tile}')


def _blend(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, scale_num: int, scale_den: int,
           out_channels: int, mode: str) -> Tensor:
    """Run ``fn`` on overlapping ``tile``² crops of ``x`` ``(B, C, H, W)`` and blend the outputs.

    ``fn`` maps a crop of size ``t`` to an output of size ``t * scale_num / scale_den``; ``tile`` and ``overlap``
    are in input units and must map to whole output units.
    """
    b, _, h, w = x.shape
    stride = tile - overlap
    ys, xs = tile_starts(h, tile, stride), tile_starts(w, tile, stride)
    oh, ow = h * scale_num // scale_den, w * scale_num // scale_den
    otile = tile * scale_num // scale_den
    oys, oxs = [s * scale_num // scale_den for s in ys], [s * scale_num // scale_den for s in xs]
    wy, wx = blend_weights_1d(oys, otile, oh, mode), blend_weights_1d(oxs, otile, ow, mode)
    out = wsum = None
    for iy, y0 in enumerate(ys):
        for ix, x0 in enumerate(xs):
            crop = x[:, :, y0:y0 + tile, x0:x0 + tile]
            res = fn(crop)
            if len(ys) == 1 and len(xs) == 1:
                return res  # one tile covers everything: exactly the untiled result
            if out is None:
                out = res.new_zeros((b, out_channels, oh, ow), dtype=torch.float32)
                wsum = res.new_zeros((oh, ow), dtype=torch.float32)
            wt = (wy[iy][:, None] * wx[ix][None, :]).to(device=res.device, dtype=torch.float32)
            th, tw = res.shape[-2:]
            oy0, ox0 = oys[iy], oxs[ix]
            out[:, :, oy0:oy0 + th, ox0:ox0 + tw].add_(res.float() * wt)
            wsum[oy0:oy0 + th, ox0:ox0 + tw].add_(wt)
            del res
    return (out / wsum).to(x.dtype if x.is_floating_point() else torch.float32)


# ---------------------------------------------------------------------------------------------------------------------
# tiled encode / decode
@torch.no_grad()
def tiled_encode(model: nn.Module, x: Tensor, tile: int, overlap: int, blend: str = 'linear') -> DiagonalGaussian:
    """Posterior of images ``x`` ``(B, 3, H, W)`` in ``[-1, 1]`` computed tile by tile.

    ``x`` is reflect-padded to a multiple of the compression factor ``f`` (as :meth:`VAE.encode` does). Tiles of
    ``tile`` pixels overlapping by ``overlap`` pixels (both multiples of ``f``) are encoded separately; their
    posterior moments (mean and log-variance) are blended with ramps over the ``overlap / f`` latent cells they share.

    Returns:
        A :class:`DiagonalGaussian` over latents ``(B, d, ceil(H/f), ceil(W/f))``.
    """
    f = model.downsample_factor
    _check_tile(tile, overlap, f, 'encode')
    x, _ = pad_to_multiple(x, f)
    moments = _blend(model.encoder, x, tile, overlap, 1, f, 2 * model.latent_channels, blend)
    return DiagonalGaussian(moments)


@torch.no_grad()
def tiled_decode(model: nn.Module, z: Tensor, tile_latent: int, overlap_latent: int,
                 out_size: Sequence[int] | None = None, blend: str = 'linear') -> Tensor:
    """Images ``(B, 3, f*h, f*w)`` in ``[-1, 1]`` (cropped to ``out_size``) decoded from ``z`` ``(B, d, h, w)``
    in tiles of ``tile_latent`` latent cells overlapping by ``overlap_latent`` cells, blended in pixel space with
    ramps over ``f * overlap_latent`` pixels."""
    f = model.downsample_factor
    _check_tile(tile_latent, overlap_latent, 1, 'decode')
    out = _blend(model.decoder, z, tile_latent, overlap_latent, f, 1, model.decoder.conv_out.out_channels
                 if hasattr(model.decoder, 'conv_out') else 3, blend)
    if out_size is not None:
        out = out[..., :out_size[0], :out_size[1]]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# memory estimate
class LiveTensorTracker(TorchDispatchMode):
    """Peak bytes of tensor storages allocated by ATen ops while active (inputs and weights excluded).

    Storages are keyed by their data pointer and released through a ``weakref`` finaliser on the storage object
    (PyTorch preserves one Python storage object per storage), so views and in-place ops are not double counted.
    Memory allocated and freed inside one fused kernel (workspaces) is not seen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[int, int] = {}

    def _free(self, ptr: int, nbytes: int) -> None:
        if self._live.pop(ptr, None) is not None:
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        out = func(*args, **(kwargs or {}))
        inputs = None
        for t in tree_leaves(out):
            if not isinstance(t, Tensor):
                continue
            st = t.untyped_storage()
            ptr = st.data_ptr()
            if ptr == 0 or ptr in self._live:
                continue
            if inputs is None:  # views / in-place results of inputs (weights included) are not allocations
                inputs = {a.untyped_storage().data_ptr() for a in tree_leaves((args, kwargs))
                          if isinstance(a, Tensor)}
            if ptr in inputs:
                continue
            n = st.nbytes()
            self._live[ptr] = n
            self.current += n
            self.peak = max(self.peak, self.current)
            weakref.finalize(st, self._free, ptr, n)
        return out


def measure_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak live bytes of the tensors ``fn()`` allocates (its result kept until it returns)."""
    with LiveTensorTracker() as tr:
        res = fn()
        peak = tr.peak
    del res
    return peak


def _param(model: nn.Module) -> Tensor:
    return next(model.parameters())


@torch.no_grad()
def calibrate_memory(model: nn.Module, direction: str, sizes: Sequence[int] = (2, 4, 6),
                     dtype: torch.dtype | None = None) -> tuple[float, float, float]:
    """Fit ``peak_bytes(B=1, P) = a·P + b·P² + c`` for one encoder or decoder call (``P`` output or input pixels).

    Measured with :class:`LiveTensorTracker` on square inputs of ``sizes`` latent cells (``s·f`` pixels) and solved
    exactly through the three points; ``b`` and ``c`` are clipped at 0. Cached on the model per
    ``(direction, device, dtype, autocast)``.
    """
    p = _param(model)
    autocast = torch.is_autocast_enabled(p.device.type) if p.device.type in ('cpu', 'cuda') else False
    key = (direction, str(p.device), str(dtype or p.dtype), autocast)
    cache = model.__dict__.setdefault('_tile_memory_calibration', {})
    if key in cache:
        return cache[key]
    f = model.downsample_factor
    d = model.latent_channels
    dt = dtype or p.dtype
    pts = []
    for s in sizes:
        if direction == 'encode':
            x = torch.zeros(1, 3, s * f, s * f, device=p.device, dtype=dt)
            peak = measure_peak_bytes(lambda: model.encoder(x))
        elif direction == 'decode':
            z = torch.zeros(1, d, s, s, device=p.device, dtype=dt)
            peak = measure_peak_bytes(lambda: model.decoder(z))
        else:
            raise ValueError(f"direction must be 'encode' or 'decode', got '{direction}'")
        pts.append((float((s * f) ** 2), float(peak)))
    (p1, m1), (p2, m2), (p3, m3) = pts
    # Quadratic through three points (Newton form).
    d12 = (m2 - m1) / (p2 - p1)
    d23 = (m3 - m2) / (p3 - p2)
    b = (d23 - d12) / (p3 - p1)
    b = max(b, 0.0) if b * p3 * p3 > 1e-3 * m3 else 0.0  # numerical noise -> purely linear
    a = d12 - b * (p1 + p2)
    c = max(m1 - a * p1 - b * p1 * p1, 0.0)
    cache[key] = (a, b, c)
    return a, b, c


def estimate_peak_memory(model: nn.Module, shape: Sequence[int], direction: str = 'decode',
                         dtype: torch.dtype | None = None) -> int:
    """Estimated peak activation bytes of one untiled encoder or decoder call.

    Args:
        model: a :class:`~transvae.models.VAE`.
        shape: image shape ``(B, C, H, W)`` or ``(H, W)`` (pixels, also for ``'decode'``); ``H, W`` rounded up to
            multiples of ``f``.
        direction: ``'encode'`` or ``'decode'``.
    """
    b = shape[0] if len(shape) == 4 else 1
    f = model.downsample_factor
    h, w = (math.ceil(s / f) * f for s in shape[-2:])
    a, q, c = calibrate_memory(model, direction, dtype=dtype)
    pix = float(h * w)
    return int(b * (a * pix + q * pix * pix) + c)


def _blend_buffers(shape: Sequence[int], model: nn.Module, direction: str, tiled: bool) -> int:
    """Bytes of the full-size accumulators a tiled call adds (output + weight sum, fp32)."""
    if not tiled:
        return 0
    b = shape[0] if len(shape) == 4 else 1
    f = model.downsample_factor
    h, w = (math.ceil(s / f) * f for s in shape[-2:])
    if direction == 'decode':
        return 4 * (b * 3 * h * w + h * w) * 2  # accumulator, weights, final division
    hl, wl = h // f, w // f
    return 4 * (b * 2 * model.latent_channels * hl * wl + hl * wl) * 2


def default_memory_budget_mb(device: torch.device | str = 'cpu') -> float:
    """Half the available host memory (``MemAvailable``) on CPU; 80 % of free device memory on CUDA."""
    device = torch.device(device)
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return 0.8 * free / 2**20
    try:
        with open('/proc/meminfo') as fh:
            for line in fh:
                if line.startswith('MemAvailable:'):
                    return 0.5 * int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.5 * (os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')) / 2**20


def choose_tile(model: nn.Module, shape: Sequence[int], memory_budget_mb: float | None = None,
                direction: str = 'decode', overlap: int | None = None, max_tile: int | None = None,
                dtype: torch.dtype | None = None, safety: float = 1.3) -> int | None:
    """Whole image (``None``) if its estimated peak fits ``memory_budget_mb``, else the largest square tile (pixels,
    a multiple of ``f``) whose estimated peak plus the full-size blend buffers fits.

    Args:
        model: a VAE.
        shape: image shape ``(B, C, H, W)`` or ``(H, W)`` in pixels (also for ``'decode'``).
        memory_budget_mb: activation budget in MiB (weights excluded); default :func:`default_memory_budget_mb`.
        direction: ``'encode'`` or ``'decode'``.
        overlap: the overlap that will be used (pixels); tiles must be larger. Default ``4 f``.
        max_tile: cap on the tile size (pixels), e.g. to bound the quadratic attention cost.
        safety: factor applied to the live-tensor estimate to cover what it does not see (allocator slack, kernel
            workspaces). Measured on CPU (TransVAE-T decode, fresh process, peak-RSS increase / estimate): 1.06 at a
            512² tile of a 2048² image, 1.17 at a 624² tile of 4096², 1.23 for a whole 1024² image.

    Raises:
        MemoryError: even the smallest tile (``overlap + f``, at least ``2 f``) does not fit the budget.
    """
    p = _param(model)
    budget = (memory_budget_mb if memory_budget_mb is not None else default_memory_budget_mb(p.device)) * 2**20
    f = model.downsample_factor
    h, w = (math.ceil(s / f) * f for s in shape[-2:])
    b = shape[0] if len(shape) == 4 else 1
    overlap = 4 * f if overlap is None else overlap
    budget = budget / safety
    if max_tile is None or max(h, w) <= max_tile:
        if estimate_peak_memory(model, (b, 3, h, w), direction, dtype) <= budget:
            return None
    extra = _blend_buffers((b, 3, h, w), model, direction, tiled=True)
    hi = max(h, w) if max_tile is None else min(max(h, w), max_tile // f * f)
    lo = max(overlap + f, 2 * f)
    best = None
    t = hi
    while t >= lo:  # tiles are few sizes (multiples of f): a linear scan from the top is cheap
        if estimate_peak_memory(model, (b, 3, t, t), direction, dtype) + extra <= budget:
            best = t
            break
        t -= f
    if best is None:
        need = (estimate_peak_memory(model, (b, 3, lo, lo), direction, dtype) + extra) / 2**20
        raise MemoryError(f'{direction}: no tile fits a memory budget of {budget * safety / 2**20:.0f} MiB '
                          f'(the smallest tile, {lo}px, needs about {need * safety:.0f} MiB)')
    return best


__all__ = ['tile_starts', 'blend_weights_1d', 'tiled_encode', 'tiled_decode', 'LiveTensorTracker',
           'measure_peak_bytes', 'calibrate_memory', 'estimate_peak_memory', 'choose_tile',
           'default_memory_budget_mb', 'BLEND_MODES']
