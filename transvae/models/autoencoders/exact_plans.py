"""Where each backbone splits into a part run on the whole grid and a convolutional part run in exact tiles.

An :class:`ExactPlan` for an encoder is ``whole(tiled(x))`` (the high-resolution CNN stages first); for a decoder
``tiled(whole(z))``. The whole part holds everything global (Transformer stages, attention blocks) and runs at low
resolution on the full token grid; the tiled part is a :class:`~.exact_tiling.TiledSegment`. Plans re-state the
backbone's forward as these two halves; :func:`exact_plan` refuses a subclass that overrides ``forward``, and the
tests compare ``whole(tiled(x))`` with ``forward(x)`` for every planned class. A new architecture registers a
plan builder with :func:`register_exact_plan`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..backbones.cnn import CNNDecoder, CNNEncoder, _Level
from ..backbones.hybrid import TransVAEDecoder, TransVAEEncoder
from ..blocks.attn_block import AttnBlock
from ..blocks.stages import ConvStage
from ..layers.sampling import channel_to_space_duplicate, space_to_channel_average
from .exact_tiling import ExactTilingUnsupported, TiledSegment, register_tile_safe

register_tile_safe(_Level)  # ResBlocks (+ AttnBlocks, which check_tile_safe still rejects) at one resolution


@dataclass
class ExactPlan:
    """``encoder: whole(tiled(x))``; ``decoder: tiled(whole(z))``. ``tiled`` is ``None`` when nothing is local."""

    whole: Callable[[Tensor], Tensor]
    tiled: TiledSegment | None
    is_encoder: bool


_PLANS: dict[type, Callable[[nn.Module], ExactPlan]] = {}


def register_exact_plan(cls: type) -> Callable:
    """Decorator registering ``builder(backbone) -> ExactPlan`` for backbones of exactly ``cls``."""
    def deco(builder: Callable[[nn.Module], ExactPlan]) -> Callable[[nn.Module], ExactPlan]:
        _PLANS[cls] = builder
        return builder
    return deco


def exact_plan(backbone: nn.Module) -> ExactPlan:
    """The plan of ``backbone``; :class:`ExactTilingUnsupported` if its class (or forward) has none."""
    for cls in type(backbone).__mro__:
        if cls in _PLANS:
            if type(backbone).forward is not cls.forward:
                break
            return _PLANS[cls](backbone)
    raise ExactTilingUnsupported(f"exact tiling has no plan for {type(backbone).__name__} (planned: "
                                 f"{sorted(c.__name__ for c in _PLANS)}); use mode='blend'")


def _num_leading_cnn(stages: nn.ModuleList) -> int:
    n = 0
    for s in stages:
        if not isinstance(s, ConvStage):
            break
        n += 1
    return n


@register_exact_plan(TransVAEEncoder)
def _transvae_encoder(enc: TransVAEEncoder) -> ExactPlan:
    """Tiled: ``conv_in``, the leading CNN stages and the down-sampler into the first Transformer stage."""
    s, nc = len(enc.stages), _num_leading_cnn(enc.stages)
    nd = min(nc, s - 1)  # down-samplers inside the tiled part

    def tiled(x: Tensor) -> Tensor:
        h = enc.conv_in(x)
        for i in range(nc):
            h = enc.stages[i](h) if i == 0 else enc.stages[i](enc.downs[i - 1](h))
        return enc.downs[nc - 1](h) if nc < s else h

    def whole(h: Tensor) -> Tensor:
        if nc == 0:
            h = enc.conv_in(h)
        for i in range(nc, s):
            if i > nc:  # downs[nc - 1] (into the first Transformer stage) belongs to the tiled part
                h = enc.downs[i - 1](h)
            h = enc.stages[i](h)
        out = enc.conv_out(enc.act_out(enc.norm_out(h)))
        if enc.latent_shortcut:
            d = enc.latent_channels
            out = torch.cat([out[:, :d] + space_to_channel_average(h, d, factor=1), out[:, d:]], dim=1)
        return out

    if nc == 0:
        return ExactPlan(whole, None, True)
    mods = [enc.conv_in, *enc.stages[:nc], *enc.downs[:nd]]
    return ExactPlan(whole, TiledSegment(tiled, mods, enc.conv_in.in_channels), True)


@register_exact_plan(TransVAEDecoder)
def _transvae_decoder(dec: TransVAEDecoder) -> ExactPlan:
    """Tiled: the up-sampler out of the last Transformer stage, the CNN stages and the output head."""
    s, nc = len(dec.stages), _num_leading_cnn(dec.stages)

    def whole(z: Tensor) -> Tensor:
        h = dec.conv_in(z)
        if dec.latent_shortcut:
            h = h + channel_to_space_duplicate(z, dec.widths[-1], factor=1)
        for i in range(s - 1, nc - 1, -1):
            h = dec.stages[i](h)
            if i > nc:
                h = dec.ups[i - 1](h)
        return h

    def tiled(h: Tensor) -> Tensor:
        for i in range(nc - 1, -1, -1):
            if i + 1 < s:
                h = dec.ups[i](h)
            h = dec.stages[i](h)
        return dec.conv_out(dec.act_out(dec.norm_out(h)))

    if nc == 0:
        return ExactPlan(lambda z: dec(z), None, False)
    mods = [*dec.ups[:min(nc, s - 1)], *dec.stages[:nc], dec.norm_out, dec.act_out, dec.conv_out]
    in_ch = dec.widths[nc] if nc < s else dec.widths[-1]
    return ExactPlan(whole, TiledSegment(tiled, mods, in_ch), False)


def _has_attention(m: nn.Module) -> bool:
    return any(isinstance(x, AttnBlock) for x in m.modules())


@register_exact_plan(CNNEncoder)
def _cnn_encoder(enc: CNNEncoder) -> ExactPlan:
    """Tiled: every level before the first one with attention (with its down-sampler); whole: the rest."""
    n = len(enc.levels)
    first = next((i for i in range(n) if _has_attention(enc.levels[i])), n)
    cut = min(first, n - 1)  # levels[:cut] (and downs[:cut]) are tiled

    def tiled(x: Tensor) -> Tensor:
        h = enc.conv_in(x)
        for i in range(cut):
            h = enc.downs[i](enc.levels[i](h))
        return h

    def whole(h: Tensor) -> Tensor:
        if cut == 0:
            h = enc.conv_in(h)
        for i in range(cut, n):
            h = enc.levels[i](h)
            if i < len(enc.downs):
                h = enc.downs[i](h)
        return enc.conv_out(enc.act_out(enc.norm_out(enc.mid(h))))

    if cut == 0:
        return ExactPlan(whole, None, True)
    mods = [enc.conv_in, *enc.levels[:cut], *enc.downs[:cut]]
    return ExactPlan(whole, TiledSegment(tiled, mods, enc.conv_in.in_channels), True)


@register_exact_plan(CNNDecoder)
def _cnn_decoder(dec: CNNDecoder) -> ExactPlan:
    """Whole: ``conv_in``, the mid-block and every level up to the last one with attention; tiled: the rest."""
    n = len(dec.levels)
    last = max((k for k in range(n) if _has_attention(dec.levels[k])), default=-1)
    start = last + 1  # levels[start:] are tiled, each preceded by its up-sampler

    def whole(z: Tensor) -> Tensor:
        h = dec.mid(dec.conv_in(z))
        for k in range(start):
            h = dec.levels[k](h) if k == 0 else dec.levels[k](dec.ups[k - 1](h))
        return h

    def tiled(h: Tensor) -> Tensor:
        for k in range(start, n):
            h = dec.levels[k](h) if k == 0 else dec.levels[k](dec.ups[k - 1](h))
        return dec.conv_out(dec.act_out(dec.norm_out(h)))

    if start == n:
        return ExactPlan(lambda z: dec(z), None, False)
    mods = [*dec.ups[max(start - 1, 0):], *dec.levels[start:], dec.norm_out, dec.act_out, dec.conv_out]
    in_ch = dec.conv_in.out_channels if start == 0 else dec.ups[start - 1].in_channels
    return ExactPlan(whole, TiledSegment(tiled, mods, in_ch), False)


__all__ = ['ExactPlan', 'register_exact_plan', 'exact_plan']
