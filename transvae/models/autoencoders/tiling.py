"""Tiled encoding / decoding as a capability of the autoencoder (``enable_tiling`` / ``tiled_encode`` / ``tiled_decode``).

Two modes, each a :class:`Tiler` in :data:`TILERS`:

* ``'exact'`` (default): the global part (Transformer stages, attention) runs on the whole low-resolution token
  grid; only the convolutional high-resolution part is tiled, with halos and whole-map GroupNorm statistics
  (:mod:`.exact_tiling`; where the backbone's segments are cut: :mod:`.exact_plans`). The result equals the
  untiled one up to float rounding. Peak memory is ``max(global part at full size, one tile + the two full-size
  maps at the cut)``.
* ``'blend'``: the approximate mode: the whole encoder / decoder runs on overlapping tiles that are blended
  (:mod:`.blend_tiling`). Each tile's attention and GroupNorm see only the tile. Peak memory: one tile plus the
  full-size accumulators.

``tile`` is in image pixels for both directions (``'auto'``: whole image if its estimated peak fits
``memory_budget_mb``, else the largest tile that does). Memory estimates are :class:`~transvae.utils.memory.PeakModel`
fits of tracked tensor allocations on tiny inputs (weights excluded), cached per model.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from transvae.utils.memory import PeakModel, default_memory_budget_mb

from ..distributions import DiagonalGaussian
from .blend_tiling import BLEND_RAMPS, blend_tiles, check_blend_tile
from .exact_plans import ExactPlan, exact_plan
from .exact_tiling import prepare_segment, run_exact
from .padding import pad_to_multiple

_F32 = 4


@dataclass(frozen=True)
class TilingConfig:
    """What :meth:`TilingMixin.enable_tiling` stores.

    Args:
        tile: tile size in image pixels, or ``'auto'`` (chosen from ``memory_budget_mb``).
        overlap: ``'blend'`` only: overlap in pixels (default a quarter of the tile, at least ``2 f``).
        memory_budget_mb: activation budget for ``'auto'`` (default: half the free host / 80 % of free GPU memory).
        mode: a key of :data:`TILERS` (``'exact'`` or ``'blend'``).
        ramp: ``'blend'`` only: ``'linear'`` or ``'cosine'`` blending ramps.
    """

    tile: int | str = 'auto'
    overlap: int | None = None
    memory_budget_mb: float | None = None
    mode: str = 'exact'
    ramp: str = 'linear'

    def __post_init__(self) -> None:
        if self.mode not in TILERS:
            raise ValueError(f"tiling mode must be one of {sorted(TILERS)}, got {self.mode!r}")
        if self.ramp not in BLEND_RAMPS:
            raise ValueError(f'blend ramp must be one of {BLEND_RAMPS}, got {self.ramp!r}')
        if self.tile != 'auto' and (isinstance(self.tile, (bool, str)) or not isinstance(self.tile, int)
                                    or self.tile <= 0):
            raise ValueError(f"tile must be 'auto' or a positive int (pixels), got {self.tile!r}")
        if self.overlap is not None and self.overlap < 0:
            raise ValueError(f'overlap must be >= 0 pixels, got {self.overlap}')


def _cache(model: nn.Module) -> dict:
    return model.__dict__.setdefault('_tiling_cache', {})


def _param(model: nn.Module) -> Tensor:
    return next(model.parameters())


class Tiler:
    """One tiling mode: how a tile size is aligned, how a direction runs, and its estimated peak bytes."""

    def align(self, model: nn.Module, direction: str) -> int:
        """Tile sizes (image pixels) are multiples of this."""
        raise NotImplementedError

    def encode(self, model: nn.Module, x: Tensor, tile: int, cfg: TilingConfig) -> Tensor:
        """Moments ``(B, 2d, H/f, W/f)`` of padded images ``x`` ``(B, 3, H, W)``."""
        raise NotImplementedError

    def decode(self, model: nn.Module, z: Tensor, tile: int, cfg: TilingConfig) -> Tensor:
        """Images ``(B, 3, f·h, f·w)`` of latents ``z`` ``(B, d, h, w)``."""
        raise NotImplementedError

    def peak_bytes(self, model: nn.Module, direction: str, b: int, h: int, w: int, tile: int,
                   cfg: TilingConfig) -> int:
        """Estimated peak activation bytes for an ``h × w``-pixel image in ``tile``-pixel tiles."""
        raise NotImplementedError


def whole_peak_model(model: nn.Module, direction: str) -> PeakModel:
    """Peak bytes of one untiled encoder / decoder call as a function of image pixels (cached)."""
    p = _param(model)
    key = ('whole', direction, str(p.device), str(p.dtype))
    cache = _cache(model)
    if key not in cache:
        f, d = model.downsample_factor, model.latent_channels
        if direction == 'encode':
            def run(s: int) -> Tensor:
                return model.encoder(torch.zeros(1, 3, s * f, s * f, device=p.device, dtype=p.dtype))
        else:
            def run(s: int) -> Tensor:
                return model.decoder(torch.zeros(1, d, s, s, device=p.device, dtype=p.dtype))
        with torch.no_grad():
            cache[key] = PeakModel.calibrate(run, lambda s: (s * f) ** 2)
    return cache[key]


class BlendTiler(Tiler):
    """The approximate mode (:mod:`.blend_tiling`)."""

    def align(self, model: nn.Module, direction: str) -> int:
        return model.downsample_factor

    @staticmethod
    def overlap(model: nn.Module, tile: int, cfg: TilingConfig) -> int:
        f = model.downsample_factor
        ov = cfg.overlap if cfg.overlap is not None else max(2 * f, tile // 4)
        ov = math.ceil(ov / f) * f
        return ov if ov < tile else max(0, tile - f)

    def encode(self, model: nn.Module, x: Tensor, tile: int, cfg: TilingConfig) -> Tensor:
        f, ov = model.downsample_factor, self.overlap(model, tile, cfg)
        check_blend_tile(tile, ov, f, 'encode')
        return blend_tiles(model.encoder, x, tile, ov, 1, f, 2 * model.latent_channels, cfg.ramp)

    def decode(self, model: nn.Module, z: Tensor, tile: int, cfg: TilingConfig) -> Tensor:
        f, ov = model.downsample_factor, self.overlap(model, tile, cfg)
        check_blend_tile(tile, ov, f, 'decode')
        return blend_tiles(model.decoder, z, tile // f, ov // f, f, 1, 3, cfg.ramp)

    def peak_bytes(self, model: nn.Module, direction: str, b: int, h: int, w: int, tile: int,
                   cfg: TilingConfig) -> int:
        t = min(tile, max(h, w))
        est = whole_peak_model(model, direction)(float(t * t), b)
        f = model.downsample_factor
        if direction == 'decode':  # fp32 accumulator, weight sum and the final division
            return est + 2 * _F32 * (b * 3 * h * w + h * w)
        hl, wl = h // f, w // f
        return est + 2 * _F32 * (b * 2 * model.latent_channels * hl * wl + hl * wl)


class ExactTiler(Tiler):
    """The exact mode: whole-grid global part, exact tiles for the convolutional part."""

    @staticmethod
    def plan(model: nn.Module, direction: str) -> ExactPlan:
        p = _param(model)
        backbone = model.encoder if direction == 'encode' else model.decoder
        # the plan's functions hold this backbone: a deep copy of the model (whose cache is copied too) builds its own
        key = ('plan', direction, str(p.device), str(p.dtype), id(backbone))
        cache = _cache(model)
        if key not in cache:
            plan = exact_plan(backbone)
            prepare_segment(plan.tiled, p.device, p.dtype)
            cache[key] = plan
        return cache[key]

    @staticmethod
    def _px_per_unit(model: nn.Module, plan: ExactPlan) -> int:
        """Image pixels per input unit of the tiled segment."""
        return 1 if plan.is_encoder else int(plan.tiled.scale)  # the decoder's segment runs at 1/scale

    def align(self, model: nn.Module, direction: str) -> int:
        plan = self.plan(model, direction)
        return plan.tiled.align * self._px_per_unit(model, plan)

    def encode(self, model: nn.Module, x: Tensor, tile: int, cfg: TilingConfig) -> Tensor:
        plan = self.plan(model, 'encode')
        return plan.whole(run_exact(plan.tiled, x, tile))

    def decode(self, model: nn.Module, z: Tensor, tile: int, cfg: TilingConfig) -> Tensor:
        plan = self.plan(model, 'decode')
        return run_exact(plan.tiled, plan.whole(z), tile // self._px_per_unit(model, plan))

    def part_peak_models(self, model: nn.Module, direction: str) -> tuple[PeakModel, PeakModel]:
        """``(global part, tiled segment)`` peak bytes as functions of their *image* pixels (cached)."""
        p = _param(model)
        key = ('exact_parts', direction, str(p.device), str(p.dtype))
        cache = _cache(model)
        if key in cache:
            return cache[key]
        plan = self.plan(model, direction)
        seg, f, d = plan.tiled, model.downsample_factor, model.latent_channels
        upp = self._px_per_unit(model, plan)

        def zeros(c: int, n: int) -> Tensor:
            return torch.zeros(1, c, n, n, device=p.device, dtype=p.dtype)
        # s latent cells = s·f image pixels; the segment input is s·f/upp units, the cut map s·f·scale (encoder)
        if plan.is_encoder:
            def run_whole(s: int) -> Tensor:
                return plan.whole(zeros(seg.out_channels, int(s * f * seg.scale)))

            def run_tile(s: int) -> Tensor:
                return seg.fn(zeros(seg.in_channels, s * f))
        else:
            def run_whole(s: int) -> Tensor:
                return plan.whole(zeros(d, s))

            def run_tile(s: int) -> Tensor:
                return seg.fn(zeros(seg.in_channels, s * f // upp))
        with torch.no_grad():
            cache[key] = (PeakModel.calibrate(run_whole, lambda s: (s * f) ** 2),
                          PeakModel.calibrate(run_tile, lambda s: (s * f) ** 2))
        return cache[key]

    def peak_bytes(self, model: nn.Module, direction: str, b: int, h: int, w: int, tile: int,
                   cfg: TilingConfig) -> int:
        plan = self.plan(model, direction)
        if tile >= max(h, w):
            return whole_peak_model(model, direction)(float(h * w), b)
        glob, seg_model = self.part_peak_models(model, direction)
        seg, upp = plan.tiled, self._px_per_unit(model, plan)
        crop = min(tile + 2 * seg.halo * upp, h) * min(tile + 2 * seg.halo * upp, w)
        if plan.is_encoder:
            cut = b * seg.out_channels * h * w * seg.scale ** 2 * _F32  # the segment's full output map
            return int(max(glob(float(h * w), b) + cut, seg_model(float(crop), b) + cut))
        cut = b * seg.in_channels * (h // upp) * (w // upp) * _F32  # the global part's output (segment input)
        return int(max(glob(float(h * w), b), seg_model(float(crop), b) + cut + b * 3 * h * w * _F32))


TILERS: dict[str, Tiler] = {'exact': ExactTiler(), 'blend': BlendTiler()}


def choose_tile(model: nn.Module, direction: str, shape: Sequence[int], cfg: TilingConfig,
                safety: float = 1.3) -> int | None:
    """The tile (image pixels) for ``cfg`` and an image ``shape`` ``(B, C, H, W)`` / ``(H, W)``; ``None``: whole.

    ``'auto'``: whole if its estimated peak times ``safety`` fits the budget, else the largest aligned tile that
    does. ``safety`` covers what tracked tensors miss (allocator slack, kernel workspaces, the float64 GroupNorm
    statistics of one layer). Raises ``MemoryError`` when no tile fits.
    """
    tiler = TILERS[cfg.mode]
    f = model.downsample_factor
    b = shape[0] if len(shape) == 4 else 1
    h, w = (math.ceil(s / f) * f for s in shape[-2:])
    a = tiler.align(model, direction)
    if cfg.tile != 'auto':
        t = math.ceil(cfg.tile / a) * a
        return None if t >= max(h, w) else t
    budget = (cfg.memory_budget_mb if cfg.memory_budget_mb is not None
              else default_memory_budget_mb(_param(model).device)) * 2**20 / safety
    if whole_peak_model(model, direction)(float(h * w), b) <= budget:
        return None
    lo = 2 * a
    for t in range(math.ceil(max(h, w) / a) * a - a, lo - 1, -a):
        if tiler.peak_bytes(model, direction, b, h, w, t, cfg) <= budget:
            return t
    need = tiler.peak_bytes(model, direction, b, h, w, lo, cfg) * safety / 2**20
    raise MemoryError(f'{direction} {h}x{w} ({cfg.mode} tiling): no tile fits a budget of '
                      f'{budget * safety / 2**20:.0f} MiB (the smallest tile, {lo} px, needs about {need:.0f} MiB)')


class TilingMixin:
    """``enable_tiling`` / ``disable_tiling`` / ``tiled_encode`` / ``tiled_decode`` for a VAE with ``encoder``,
    ``decoder``, ``downsample_factor`` and ``latent_channels``. While tiling is enabled, ``encode`` / ``decode``
    of a model in eval mode go through the tiled paths (training never does)."""

    tiling: TilingConfig | None = None

    def enable_tiling(self, tile: int | str = 'auto', overlap: int | None = None,
                      memory_budget_mb: float | None = None, mode: str = 'exact', ramp: str = 'linear') -> None:
        """Tile ``encode`` / ``decode`` (eval mode) from now on; see :class:`TilingConfig` for the arguments."""
        self.tiling = TilingConfig(tile, overlap, memory_budget_mb, mode, ramp)

    def disable_tiling(self) -> None:
        """Back to whole-image ``encode`` / ``decode``."""
        self.tiling = None

    def _tiling_cfg(self, overrides: dict) -> TilingConfig:
        base = self.tiling or TilingConfig()
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def _use_tiling(self) -> bool:
        return self.tiling is not None and not self.training

    @torch.no_grad()
    def tiled_encode(self, x: Tensor, tile: int | str | None = None, overlap: int | None = None,
                     memory_budget_mb: float | None = None, mode: str | None = None,
                     ramp: str | None = None) -> DiagonalGaussian:
        """Posterior of ``x`` ``(B, 3, H, W)`` in ``[-1, 1]`` over ``(B, d, ceil(H/f), ceil(W/f))``, computed in tiles.

        Arguments left ``None`` come from :meth:`enable_tiling` (or the :class:`TilingConfig` defaults).
        """
        cfg = self._tiling_cfg(dict(tile=tile, overlap=overlap, memory_budget_mb=memory_budget_mb, mode=mode,
                                    ramp=ramp))
        x, _ = pad_to_multiple(x, self.downsample_factor)
        t = choose_tile(self, 'encode', x.shape, cfg)
        moments = self.encoder(x) if t is None else TILERS[cfg.mode].encode(self, x, t, cfg)
        return DiagonalGaussian(moments)

    @torch.no_grad()
    def tiled_decode(self, z: Tensor, out_size: Sequence[int] | None = None, tile: int | str | None = None,
                     overlap: int | None = None, memory_budget_mb: float | None = None, mode: str | None = None,
                     ramp: str | None = None) -> Tensor:
        """Images ``(B, 3, f·h, f·w)`` (cropped to ``out_size``) of latents ``z`` ``(B, d, h, w)``, in tiles."""
        cfg = self._tiling_cfg(dict(tile=tile, overlap=overlap, memory_budget_mb=memory_budget_mb, mode=mode,
                                    ramp=ramp))
        f = self.downsample_factor
        t = choose_tile(self, 'decode', (z.shape[0], 3, z.shape[-2] * f, z.shape[-1] * f), cfg)
        x = self.decoder(z) if t is None else TILERS[cfg.mode].decode(self, z, t, cfg)
        return x if out_size is None else x[..., :out_size[0], :out_size[1]]

    def estimate_peak_memory(self, shape: Sequence[int], direction: str = 'decode', tile: int | None = None,
                             mode: str = 'exact') -> int:
        """Estimated peak activation bytes of an ``(B, 3, H, W)`` / ``(H, W)`` image, whole or in ``tile``-px tiles."""
        if direction not in ('encode', 'decode'):
            raise ValueError(f"direction must be 'encode' or 'decode', got {direction!r}")
        f = self.downsample_factor
        b = shape[0] if len(shape) == 4 else 1
        h, w = (math.ceil(s / f) * f for s in shape[-2:])
        if tile is None:
            return whole_peak_model(self, direction)(float(h * w), b)
        return TILERS[mode].peak_bytes(self, direction, b, h, w, tile, TilingConfig(tile, mode=mode))


__all__ = ['TilingConfig', 'Tiler', 'BlendTiler', 'ExactTiler', 'TILERS', 'choose_tile', 'whole_peak_model',
           'TilingMixin']
