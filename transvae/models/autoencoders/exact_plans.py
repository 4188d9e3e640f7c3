"""Where a staged backbone splits into convolutional segments run in exact tiles and a part run on the whole map.

Every encoder / decoder lists its forward as :class:`~transvae.models.backbones.base.Segment` s (``segments()``:
stem, samplers and stages, head); an :class:`ExactPlan` is a cut index into that list. An encoder runs
``whole(tiled(x))`` with ``segments[:cut]`` tiled, a decoder ``tiled(whole(z))`` with ``segments[cut:]`` tiled; the
tiled part is a :class:`~.exact_tiling.TiledSegment` (halos, whole-map GroupNorm statistics), the whole part holds
everything global (Transformer stages, attention blocks) and runs at low resolution on the full grid.

The default cut (:func:`exact_cut`) takes the run of local segments at the image side (every module declared
tile-safe, :func:`~.exact_tiling.first_non_local`) and ends it at its last resolution change: what runs at the
tiled part's lowest resolution saves little memory in tiles, while each of its GroupNorms would cost one more sweep
over the whole tiled part. Nothing here names a backbone class: a new backbone made of segments is tiled exactly as
it is, and one without (a forward of its own, or no local segment at the image side) raises
:class:`~.exact_tiling.ExactTilingUnsupported`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..backbones.base import DecoderBase, EncoderBase, Segment, run_segments
from .exact_tiling import ExactTilingUnsupported, TiledSegment, first_non_local


@dataclass
class ExactPlan:
    """``encoder: whole(tiled(x))``; ``decoder: tiled(whole(z))``; ``cut`` indexes the backbone's segments."""

    whole: Callable[[Tensor], Tensor]
    tiled: TiledSegment
    is_encoder: bool
    cut: int


def _chain(segments: Sequence[Segment], channels_last: bool = False) -> Callable[[Tensor], Tensor]:
    """``segments`` as one function, in the backbone's memory layout (:func:`~..backbones.base.run_segments`)."""
    def run(x: Tensor) -> Tensor:
        return run_segments(segments, x, channels_last)
    return run


def _staged(backbone: nn.Module) -> tuple[list[Segment], bool]:
    """``(segments, is_encoder)``; :class:`ExactTilingUnsupported` unless ``forward`` is the segments."""
    if not isinstance(backbone, (EncoderBase, DecoderBase)) or not backbone.is_staged:
        raise ExactTilingUnsupported(f'exact tiling needs a backbone whose forward is its segments(); '
                                     f"{type(backbone).__name__} runs a forward of its own: use mode='blend'")
    return backbone.segments(), isinstance(backbone, EncoderBase)


def exact_cut(backbone: nn.Module) -> int:
    """The default cut: the image-side run of local segments, ended at its resolution change nearest the latent.

    An encoder's tiled part ends after the last sampler of that run, a decoder's starts at the first one; a run
    without a resolution change is tiled whole. Raises
    :class:`ExactTilingUnsupported` when the segment at the image side is not local (ViT, Swin: attention or an
    undeclared patch embedding / head there).
    """
    segs, is_encoder = _staged(backbone)
    n = len(segs)
    local = [first_non_local(s.modules) is None for s in segs]
    if is_encoder:
        cut = next((i for i in range(n) if not local[i]), n)  # segs[:cut] are local
        ends = [i + 1 for i in range(cut) if segs[i].resamples]
        cut = ends[-1] if ends else cut
        edge, empty = segs[0], cut == 0
    else:
        cut = next((i + 1 for i in range(n - 1, -1, -1) if not local[i]), 0)  # segs[cut:] are local
        starts = [i for i in range(cut, n) if segs[i].resamples]
        cut = starts[0] if starts else cut
        edge, empty = segs[-1], cut == n
    if empty:
        raise ExactTilingUnsupported(
            f"exact tiling: {type(backbone).__name__}'s image-side segment {edge.name!r} is not local "
            f"({first_non_local(edge.modules)}); use mode='blend'")
    return cut


@torch.no_grad()
def exact_plan(backbone: nn.Module, cut: int | None = None) -> ExactPlan:
    """The plan of a staged ``backbone`` at ``cut`` (default :func:`exact_cut`).

    The tiled part's input channels are the image channels (encoder) or measured on a 2 x 2 latent (decoder).
    """
    segs, is_encoder = _staged(backbone)
    cut = exact_cut(backbone) if cut is None else cut
    lo, hi = (1, len(segs)) if is_encoder else (0, len(segs) - 1)
    if not lo <= cut <= hi:
        raise ValueError(f'cut {cut} must be within {lo}..{hi} for the {len(segs)} segments of '
                         f'{type(backbone).__name__} (at least one tiled)')
    tiled, whole = (segs[:cut], segs[cut:]) if is_encoder else (segs[cut:], segs[:cut])
    if is_encoder:
        in_channels = backbone.in_channels
    else:
        p = next(backbone.parameters())
        z = torch.zeros(1, backbone.latent_channels, 2, 2, device=p.device, dtype=p.dtype)
        in_channels = _chain(whole)(z).shape[1]
    cl = backbone.channels_last
    seg = TiledSegment(_chain(tiled, cl), [m for s in tiled for m in s.modules], in_channels)
    return ExactPlan(_chain(whole, cl), seg, is_encoder, cut)


__all__ = ['ExactPlan', 'exact_cut', 'exact_plan']
