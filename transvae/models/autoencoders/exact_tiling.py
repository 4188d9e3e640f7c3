"""Exact tiling of a convolutional segment: halos cover every conv's receptive field, GroupNorm uses whole-map stats.

A :class:`TiledSegment` is a purely convolutional piece of an encoder or decoder (ResBlocks, samplers, GroupNorm,
point-wise activations; no attention). :func:`run_exact` computes ``segment(x)`` tile by tile and returns exactly
what one call on the whole map returns (up to float rounding):

* the input is cut into non-overlapping *owned* tiles of ``tile`` input units (aligned to the segment's resampling
  factor); each is run on a crop extended by a *halo* that covers the receptive field of all convolutions of the
  segment (:func:`segment_halo`), and only its owned part of the output is kept;
* a GroupNorm normalises with statistics of its *whole* input map, never of a tile. They are collected layer by
  layer: sweep ``k`` runs every tile up to the ``k``-th GroupNorm (earlier ones apply their finished whole-map
  statistics), accumulates that layer's per-(sample, group) mean and sum of squared deviations over the owned
  parts (Chan's parallel update, float64) and stops the tile there. After ``K`` GroupNorms, sweep ``K + 1`` produces
  the output. Nothing of the size of the full map is kept but the segment's output (or input), so the peak is one
  tile's activations plus those two maps; the price is ``K + 1`` partial sweeps of compute.

Modules the executor cannot prove local (attention, unknown blocks) raise :class:`ExactTilingUnsupported`; classes
that are local can be declared with :func:`register_tile_safe`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction

import torch
from torch import Tensor, nn

from ..blocks.resblock import ResBlock
from ..blocks.stages import ConvStage
from ..layers.norm import LayerNorm2d, RMSNorm2d
from ..layers.sampling import (ConvPixelUnshuffleDown, DCDownsample, DCUpsample, InterpConvUp, StridedConvDown)


class ExactTilingUnsupported(NotImplementedError):
    """The architecture has no exact tiled path (use the approximate ``mode='blend'``)."""


# Module classes whose output at a pixel depends only on a bounded neighbourhood through Conv2d children, pixel-wise
# ops, GroupNorm, and resampling aligned to powers of two. Exact types: a subclass may change ``forward``.
_TILE_SAFE: set[type] = {nn.Conv2d, nn.GroupNorm, nn.SiLU, nn.GELU, nn.ReLU, nn.Identity, nn.Dropout, nn.Sequential,
                         nn.ModuleList, LayerNorm2d, RMSNorm2d, ResBlock, ConvStage, ConvPixelUnshuffleDown,
                         DCDownsample, InterpConvUp, DCUpsample, StridedConvDown}


def register_tile_safe(*classes: type) -> None:
    """Declare module classes local (convolutions, point-wise ops, GroupNorm, 2x resampling) for exact tiling."""
    _TILE_SAFE.update(classes)


@dataclass
class TiledSegment:
    """A convolutional segment ``fn`` built from ``modules`` mapping ``(B, in_channels, H, W)`` to
    ``(B, C', H·scale, W·scale)``; ``scale`` is measured by :func:`prepare_segment`."""

    fn: Callable[[Tensor], Tensor]
    modules: Sequence[nn.Module]
    in_channels: int
    scale: Fraction = Fraction(1)
    out_channels: int = 0
    halo: int = 0  # input units, a multiple of ``align``
    gn_count: int = 0
    stats: dict = field(default_factory=dict)

    @property
    def align(self) -> int:
        """Tile origins and sizes are multiples of this (input units) so every resampling stays aligned."""
        return self.scale.denominator


def first_non_local(modules: Sequence[nn.Module]) -> str | None:
    """``'Type (path)'`` of the first module (depth first) not declared local, ``None`` if every one is."""
    for root in modules:
        for name, m in root.named_modules():
            if type(m) not in _TILE_SAFE and not isinstance(m, nn.GroupNorm):
                return f'{type(m).__name__} ({name or type(root).__name__})'
    return None


def check_tile_safe(modules: Sequence[nn.Module]) -> None:
    """Raise :class:`ExactTilingUnsupported` naming the first module that is not declared local."""
    bad = first_non_local(modules)
    if bad is not None:
        raise ExactTilingUnsupported(
            f"exact tiling cannot prove {bad} local; use mode='blend', or register_tile_safe() it if its output "
            'depends on a bounded neighbourhood')


@torch.no_grad()
def prepare_segment(seg: TiledSegment, device: torch.device, dtype: torch.dtype) -> TiledSegment:
    """Measure the segment's scale, output channels, GroupNorm count and halo on a small probe (in place).

    The halo sums, over every Conv2d, its one-sided reach ``max(p, (k-1)·d - p) + 1`` (the ``+1`` absorbs rounding
    at resolution changes) converted to input units by that conv's resolution, rounded up to ``align``.
    """
    check_tile_safe(seg.modules)
    probe = 16
    reaches: list[tuple[int, int]] = []

    def hook(m: nn.Conv2d, args: tuple) -> None:
        k, d, p = m.kernel_size, m.dilation, m.padding
        if isinstance(p, str):
            p = tuple((kk - 1) * dd // 2 for kk, dd in zip(k, d)) if p == 'same' else (0, 0)
        r = max(max(pp, (kk - 1) * dd - pp) for kk, dd, pp in zip(k, d, p))
        reaches.append((r, args[0].shape[-2]))

    handles = [m.register_forward_pre_hook(hook) for root in seg.modules for m in root.modules()
               if isinstance(m, nn.Conv2d)]
    try:
        y = seg.fn(torch.zeros(1, seg.in_channels, probe, probe, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    seg.scale = Fraction(y.shape[-2], probe)
    seg.out_channels = y.shape[1]
    seg.gn_count = sum(isinstance(m, nn.GroupNorm) for root in seg.modules for m in root.modules())
    halo = sum(Fraction(r + 1) * probe / size for r, size in reaches)
    seg.halo = math.ceil(halo / seg.align) * seg.align
    return seg


class _StopTile(Exception):
    """Raised by the GroupNorm being measured to end a tile's forward early."""


class _GroupNormControl:
    """Replaces every GroupNorm's forward with whole-map statistics; measures the first one that has none yet."""

    def __init__(self) -> None:
        self.stats: dict[nn.Module, tuple[Tensor, Tensor]] = {}  # module -> (mean, rstd) (B, G) float64
        self.acc: dict[nn.Module, list] = {}  # module -> [count, mean, m2]
        self.target: nn.Module | None = None
        self.called: set[nn.Module] = set()
        self.owned: tuple[int, int, int, int] = (0, 0, 0, 0)  # y0, y1, x0, x1 within the crop, input units
        self.crop_hw: tuple[int, int] = (1, 1)

    def __call__(self, m: nn.GroupNorm, x: Tensor) -> Tensor:
        if m in self.called:
            raise ExactTilingUnsupported('a GroupNorm module is applied twice in one tile; exact tiling needs one '
                                         'set of statistics per module call')
        self.called.add(m)
        st = self.stats.get(m)
        if st is None:
            if self.target not in (None, m):
                raise RuntimeError('GroupNorm modules ran in a different order in two tiles')
            self.target = m
            self._accumulate(m, x)
            raise _StopTile
        mean, rstd = st
        b, c = x.shape[:2]
        g = m.num_groups
        dt = torch.float32 if torch.is_autocast_enabled(x.device.type) else x.dtype
        rep = c // g
        mean_c = mean.to(dt).repeat_interleave(rep, dim=1).view(b, c, 1, 1)
        scale = rstd.to(dt).repeat_interleave(rep, dim=1).view(b, c, 1, 1)
        if m.affine:
            scale = scale * m.weight.to(dt).view(1, c, 1, 1)
        y = (x.to(dt) - mean_c).mul_(scale)
        return y.add_(m.bias.to(dt).view(1, c, 1, 1)) if m.affine else y

    def _owned_region(self, x: Tensor) -> Tensor:
        y0, y1, x0, x1 = self.owned
        sy, sx = Fraction(x.shape[-2], self.crop_hw[0]), Fraction(x.shape[-1], self.crop_hw[1])
        bounds = [v * s for v, s in ((y0, sy), (y1, sy), (x0, sx), (x1, sx))]
        if any(b.denominator != 1 for b in bounds):
            raise RuntimeError(f'tile not aligned to a GroupNorm input of size {tuple(x.shape[-2:])}')
        a, b_, c, d = (int(v) for v in bounds)
        return x[..., a:b_, c:d]

    def _accumulate(self, m: nn.GroupNorm, x: Tensor) -> None:
        r = self._owned_region(x)
        b, g = r.shape[0], m.num_groups
        r = r.reshape(b, g, -1).double()  # (B, G, n)
        n = r.shape[-1]
        mean_t = r.mean(-1)
        m2_t = (r - mean_t[..., None]).square_().sum(-1)
        acc = self.acc.get(m)
        if acc is None:
            self.acc[m] = [n, mean_t, m2_t]
            return
        na, mean_a, m2_a = acc
        tot = na + n
        delta = mean_t - mean_a
        acc[0], acc[1], acc[2] = tot, mean_a + delta * (n / tot), m2_a + m2_t + delta.square() * (na * n / tot)

    def finish(self) -> None:
        """Turn the measured layer's accumulators into its whole-map mean and 1/std."""
        m = self.target
        n, mean, m2 = self.acc.pop(m)
        self.stats[m] = (mean, torch.rsqrt(m2 / n + m.eps))
        self.target = None


@contextmanager
def _patched_group_norms(modules: Sequence[nn.Module], ctl: _GroupNormControl) -> Iterator[None]:
    norms = [m for root in modules for m in root.modules() if isinstance(m, nn.GroupNorm)]
    for m in norms:
        m.forward = lambda x, m=m: ctl(m, x)  # instance attribute shadows the class forward
    try:
        yield
    finally:
        for m in norms:
            del m.forward


def owned_tiles(h: int, w: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping ``(y0, y1, x0, x1)`` tiles of ``tile`` covering ``h × w`` (the last row / column smaller)."""
    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in range(0, h, tile) for x in range(0, w, tile)]


@torch.no_grad()
def run_exact(seg: TiledSegment, x: Tensor, tile: int) -> Tensor:
    """``seg.fn(x)`` computed in owned tiles of ``tile`` input units (a multiple of ``seg.align``) plus halos.

    Args:
        seg: a segment prepared by :func:`prepare_segment`.
        x: ``(B, in_channels, H, W)`` with ``H, W`` multiples of ``seg.align``.
        tile: owned tile size in input units.

    Returns:
        ``(B, out_channels, H·scale, W·scale)``, equal to ``seg.fn(x)`` up to float rounding.
    """
    h, w = x.shape[-2:]
    a = seg.align
    if tile <= 0 or tile % a:
        raise ValueError(f'exact tile {tile} must be a positive multiple of {a} (input units of this segment)')
    if h % a or w % a:
        raise ValueError(f'input {h}x{w} must be a multiple of {a} for exact tiling')
    if tile >= h and tile >= w:
        return seg.fn(x)  # one tile: the whole map
    s = seg.scale
    tiles = owned_tiles(h, w, tile)
    ctl = _GroupNormControl()
    out = None
    with _patched_group_norms(seg.modules, ctl):
        for _ in range(seg.gn_count + 1):
            for (y0, y1, x0, x1) in tiles:
                cy0, cy1 = max(0, y0 - seg.halo), min(h, y1 + seg.halo)
                cx0, cx1 = max(0, x0 - seg.halo), min(w, x1 + seg.halo)
                ctl.owned = (y0 - cy0, y1 - cy0, x0 - cx0, x1 - cx0)
                ctl.crop_hw = (cy1 - cy0, cx1 - cx0)
                ctl.called.clear()
                try:
                    y = seg.fn(x[..., cy0:cy1, cx0:cx1])
                except _StopTile:
                    continue
                if ctl.target is not None:
                    raise RuntimeError('a tile skipped a GroupNorm the others ran')
                if out is None:
                    out = y.new_empty((x.shape[0], y.shape[1], int(h * s), int(w * s)))
                oy, ox = int((y0 - cy0) * s), int((x0 - cx0) * s)
                out[..., int(y0 * s):int(y1 * s), int(x0 * s):int(x1 * s)] = \
                    y[..., oy:oy + int((y1 - y0) * s), ox:ox + int((x1 - x0) * s)]
                del y
            if ctl.target is None:
                break
            ctl.finish()
    if out is None:
        raise RuntimeError(f'exact tiling did not finish after {seg.gn_count + 1} sweeps')
    return out


__all__ = ['ExactTilingUnsupported', 'TiledSegment', 'register_tile_safe', 'first_non_local', 'check_tile_safe',
           'prepare_segment', 'owned_tiles', 'run_exact']
