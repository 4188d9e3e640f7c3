"""Down- and up-sampling between stages (the sampling slot) and the DC-AE parameter-free shortcuts.

Every sampler derives from :class:`Downsampler` or :class:`Upsampler` (both :class:`Sampler`): it is built from
``(in_channels, out_channels)`` and maps ``(B, C, H, W)`` to ``(B, C', H/2, W/2)`` (down) or ``(B, C', 2H, 2W)`` (up).
The ``DC*`` variants add DC-AE's information-preserving shortcut to the main path; ``PatchMerging`` /
``PatchExpanding`` are Swin's token samplers.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS

from .norm import build_norm


def space_to_channel_average(x: Tensor, out_channels: int, factor: int = 2) -> Tensor:
    """Pixel-unshuffle by ``factor`` then average groups of consecutive channels down to ``out_channels``.

    ``(B, C, H, W) -> (B, out_channels, H/f, W/f)``; needs ``C * f^2`` divisible by ``out_channels``.
    With ``factor=1`` it is a plain channel-group mean (DC-AE's latent shortcut).
    """
    if factor > 1 and x.shape[1] % out_channels == 0:
        # each group holds all f^2 positions of c_in / out_channels whole channels: a pooling, with no unshuffle copy
        x = F.avg_pool2d(x, factor)
        factor = 1
    g = x.shape[1] * factor * factor // out_channels  # unshuffled channels per group
    if factor > 1 and x.shape[1] * factor * factor % out_channels == 0 and g > 1 and factor % g == 0:
        # a group is g neighbours along a row (unshuffled channel c f^2 + dy f + dx, dx consecutive): pool them,
        # then unshuffle the pooled map by f rows x f / g columns; one copy of half the map instead of the full
        # unshuffle copy plus a strided mean
        return _unshuffle_rect(F.avg_pool2d(x, (1, g)), factor, factor // g)
    if factor > 1:
        x = F.pixel_unshuffle(x, factor)
    b, c, h, w = x.shape
    if c == out_channels:
        return x
    if c % out_channels:
        raise ValueError(f'DC averaging shortcut: {c} channels cannot be averaged into {out_channels}')
    return x.view(b, out_channels, c // out_channels, h, w).mean(dim=2)


def _unshuffle_rect(x: Tensor, fy: int, fx: int) -> Tensor:
    """Pixel-unshuffle by ``fy`` rows and ``fx`` columns: ``(B, C, H, W) -> (B, C fy fx, H / fy, W / fx)``.

    Output channel ``c fy fx + dy fx + dx`` holds ``x[:, c, fy i + dy, fx j + dx]`` (``F.pixel_unshuffle``'s order);
    the result keeps the memory format of ``x`` (channels-last in, channels-last out).
    """
    b, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        t = x.permute(0, 2, 3, 1).reshape(b, h // fy, fy, w // fx, fx, c).permute(0, 1, 3, 5, 2, 4)
        return t.reshape(b, h // fy, w // fx, c * fy * fx).permute(0, 3, 1, 2)
    t = x.reshape(b, c, h // fy, fy, w // fx, fx).permute(0, 1, 3, 5, 2, 4)
    return t.reshape(b, c * fy * fx, h // fy, w // fx)


def channel_to_space_duplicate(x: Tensor, out_channels: int, factor: int = 2) -> Tensor:
    """Repeat channels then pixel-shuffle by ``factor``: ``(B, C, H, W) -> (B, out_channels, fH, fW)``.

    Needs ``out_channels * f^2`` divisible by ``C``. With ``factor=1`` it is a channel duplication.
    """
    c = x.shape[1]
    target = out_channels * factor * factor
    if target % c:
        raise ValueError(f'DC duplicating shortcut: {c} channels cannot be duplicated into {target}')
    if factor > 1 and out_channels % c == 0:
        # every output channel is one input channel at all f^2 positions: a nearest upsampling, no shuffle copy
        if out_channels > c:
            x = x.repeat_interleave(out_channels // c, dim=1)
        return F.interpolate(x, scale_factor=float(factor), mode='nearest')
    if target > c:
        x = x.repeat_interleave(target // c, dim=1)
    return F.pixel_shuffle(x, factor) if factor > 1 else x


class Sampler(nn.Module, metaclass=ABCMeta):
    """Base class of the sampling slot: the resolution change between two stages (DESIGN.md §3).

    Constructor: ``(in_channels: int, out_channels: int, **variant_kwargs)``, both injected by the backbone
    (:func:`build_sampler`); a sampler keeps them as ``self.in_channels`` / ``self.out_channels``. The direction is
    the subclass: :class:`Downsampler` or :class:`Upsampler`.
    """

    in_channels: int
    out_channels: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W) -> (B, out_channels, H', W')``."""


class Downsampler(Sampler):
    """A :class:`Sampler` that halves the resolution: ``(B, C, H, W) -> (B, C', H/2, W/2)``."""


class Upsampler(Sampler):
    """A :class:`Sampler` that doubles the resolution: ``(B, C, H, W) -> (B, C', 2H, 2W)``."""


@MODELS.register_module()
class ConvPixelUnshuffleDown(Downsampler):
    """``Conv3x3(C_in -> C_out/4)`` then ``PixelUnshuffle(2)`` (DC-AE's main down path)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError(f'ConvPixelUnshuffleDown needs out_channels divisible by 4, got {out_channels}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = nn.Conv2d(in_channels, out_channels // 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_unshuffle(self.conv(x), 2)


@MODELS.register_module()
class DCDownsample(ConvPixelUnshuffleDown):
    """:class:`ConvPixelUnshuffleDown` plus the parameter-free channel-averaging shortcut (TransVAE's DC path)."""

    def forward(self, x: Tensor) -> Tensor:
        # in place on the fresh unshuffled conv output (autograd does not need it)
        return super().forward(x).add_(space_to_channel_average(x, self.out_channels))


@MODELS.register_module()
class InterpConvUp(Upsampler):
    """Nearest ``x2`` interpolation then ``Conv3x3(C_in -> C_out)`` (LDM's upsampler when C_in == C_out)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


@MODELS.register_module()
class DCUpsample(InterpConvUp):
    """:class:`InterpConvUp` plus the parameter-free channel-duplicating shortcut (TransVAE's DC path)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.out_channels == self.in_channels and not (x.requires_grad and torch.is_grad_enabled()):
            # the duplicating shortcut is then the nearest x2 up-sampling itself: up-sample once for both paths
            # (inference only: under autograd the one up-sampling would sum its two grads in another order)
            up = F.interpolate(x, scale_factor=2.0, mode='nearest')
            return self.conv(up).add_(up)  # in place on the fresh conv output (autograd does not need it)
        return super().forward(x).add_(channel_to_space_duplicate(x, self.out_channels))


@MODELS.register_module()
class StridedConvDown(Downsampler):
    """LDM's downsampler: asymmetric pad ``(0, 1, 0, 1)`` then ``Conv3x3`` stride 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


@MODELS.register_module()
class PatchMerging(Downsampler):
    """Swin patch merging as a sampler: 2x2 neighbours concatenated -> LN(4C) -> Linear(4C -> C_out).

    Sampling slot: ``(in_channels, out_channels)``, ``(B, C, H, W) -> (B, C_out, H/2, W/2)`` (odd sizes are
    zero-padded).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, norm_cfg: dict | None = None) -> None:
        super().__init__()
        out_channels = out_channels or 2 * in_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm = build_norm(norm_cfg or dict(type='LN'), 4 * in_channels)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            x = F.pad(x, (0, w % 2, 0, h % 2))
        x = F.pixel_unshuffle(x, 2).permute(0, 2, 3, 1)  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x)).permute(0, 3, 1, 2)


@MODELS.register_module()
class PatchExpanding(Upsampler):
    """Swin-Unet patch expanding as a sampler: Linear(C -> 4 C_out) -> 2x2 pixel-shuffle rearrange -> LN(C_out).

    With ``C_out = C / 2`` (the Swin widths) the linear is ``C -> 2C``. Sampling slot:
    ``(B, C, H, W) -> (B, C_out, 2H, 2W)``.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, norm_cfg: dict | None = None) -> None:
        super().__init__()
        out_channels = out_channels or in_channels // 2
        self.in_channels, self.out_channels = in_channels, out_channels
        self.expand = nn.Linear(in_channels, 4 * out_channels, bias=False)
        self.norm = build_norm(norm_cfg or dict(type='LN'), out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.expand(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, 4 C_out, H, W)
        x = F.pixel_shuffle(x, 2).permute(0, 2, 3, 1)  # (B, 2H, 2W, C_out)
        return self.norm(x).permute(0, 3, 1, 2)


def build_sampler(cfg: dict, in_channels: int, out_channels: int) -> Sampler:
    """Build a registered down/up sampler for the given channels."""
    return MODELS.build(cfg, default_args=dict(in_channels=in_channels, out_channels=out_channels))


__all__ = ['Sampler', 'Downsampler', 'Upsampler', 'ConvPixelUnshuffleDown', 'DCDownsample', 'InterpConvUp',
           'DCUpsample', 'StridedConvDown', 'PatchMerging', 'PatchExpanding', 'build_sampler',
           'space_to_channel_average', 'channel_to_space_duplicate']
