"""Approximate tiling: run a whole encoder or decoder on overlapping tiles and blend their outputs.

Tiles overlap; inside an overlap the two (or more) tiles are blended with ramps that fall to ~0 at a tile's inner
edge (``linear`` or ``cosine``), so every output pixel is a convex combination of tile outputs and there is no hard
seam. Tiles touching the image border are not ramped on that side. It is an approximation: each tile's global
attention, GroupNorm statistics and conv receptive field only see the tile (the RoPE positions of a tile are just
those of a smaller image). With one tile covering the whole input the result is exactly the untiled one.
:mod:`.exact_tiling` is the mode that equals the whole-image function.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

BLEND_RAMPS = ('linear', 'cosine')


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` with step ``stride`` covering ``[0, length)``; the last one is
    shifted back to end exactly at ``length`` (so it may overlap its neighbour by more than the nominal overlap)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(n: int, ramp: str) -> Tensor:
    """Rising ramp of ``n`` values strictly inside (0, 1): ``r[i] + r[n-1-i] == 1``."""
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    if ramp == 'linear':
        return t
    if ramp == 'cosine':
        return 0.5 - 0.5 * torch.cos(math.pi * t)
    raise ValueError(f"blend ramp must be one of {BLEND_RAMPS}, got '{ramp}'")


def blend_weights_1d(starts: Sequence[int], tile: int, length: int, ramp: str = 'linear') -> list[Tensor]:
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
                w[:lo] = torch.minimum(w[:lo], _ramp(lo, ramp))
        if i < len(starts) - 1:
            hi = s + n - starts[i + 1]  # overlap with the next tile
            if hi > 0:
                w[n - hi:] = torch.minimum(w[n - hi:], _ramp(hi, ramp).flip(0))
        out.append(w)
    return out


def check_blend_tile(tile: int, overlap: int, factor: int, what: str) -> None:
    """Raise ``ValueError`` unless ``tile`` and ``overlap`` are multiples of ``factor`` with ``overlap < tile``."""
    if tile <= 0 or tile % factor:
        raise ValueError(f'{what} tile size {tile} must be a positive multiple of {factor}')
    if overlap < 0 or overlap % factor:
        raise ValueError(f'{what} overlap {overlap} must be a non-negative multiple of {factor}')
    if overlap >= tile:
        raise ValueError(f'{what} overlap {overlap} must be smaller than the tile size {tile}')


@torch.no_grad()
def blend_tiles(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, scale_num: int, scale_den: int,
                out_channels: int, ramp: str = 'linear') -> Tensor:
    """Run ``fn`` on overlapping ``tile``² crops of ``x`` ``(B, C, H, W)`` and blend the outputs.

    ``fn`` maps a crop of size ``t`` to an output ``(B, out_channels, t·num/den, ...)``; ``tile`` and ``overlap``
    are in input units and must map to whole output units.

    Returns:
        ``(B, out_channels, H·num/den, W·num/den)``.
    """
    b, _, h, w = x.shape
    stride = tile - overlap
    ys, xs = tile_starts(h, tile, stride), tile_starts(w, tile, stride)
    oh, ow = h * scale_num // scale_den, w * scale_num // scale_den
    otile = tile * scale_num // scale_den
    oys, oxs = [s * scale_num // scale_den for s in ys], [s * scale_num // scale_den for s in xs]
    wy, wx = blend_weights_1d(oys, otile, oh, ramp), blend_weights_1d(oxs, otile, ow, ramp)
    out = wsum = None
    for iy, y0 in enumerate(ys):
        for ix, x0 in enumerate(xs):
            res = fn(x[:, :, y0:y0 + tile, x0:x0 + tile])
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
    return out.div_(wsum).to(x.dtype if x.is_floating_point() else torch.float32)


__all__ = ['BLEND_RAMPS', 'tile_starts', 'blend_weights_1d', 'check_blend_tile', 'blend_tiles']
