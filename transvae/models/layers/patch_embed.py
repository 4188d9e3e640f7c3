"""Patch embeddings (image -> token map) and output heads (token map -> image) of the single-stage / Swin VAEs.

Two slots, each with a base class stating one constructor and forward signature so a config swaps them with one key:

* :class:`PatchEmbed`: ``(in_channels, embed_dims, patch_size)``, ``(B, C_in, H, W) -> (B, D, H/p, W/p)``;
* :class:`OutputHead`: ``(in_channels, out_channels, patch_size)``, ``(B, D, h, w) -> (B, C_out, p*h, p*w)``.

``PatchMerging`` / ``PatchExpanding`` (Swin) are samplers: ``sampling.py``.

``ConvPatchEmbed`` / ``PixelShuffleHead`` are the ViT-VAE baseline (Fig. 2b); ``SeqConvPatchEmbed`` /
``SeqConvUpHead`` are the DHVT-style sequential overlapping convolutions of PAPER.md §1.5 ("SeqConv").
"""
from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod

import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS

from .norm import build_act, build_norm


def _log2_int(p: int, who: str) -> int:
    k = int(round(math.log2(p))) if p > 0 else -1
    if k < 0 or 2 ** k != p:
        raise ValueError(f'{who} needs a power-of-two patch_size, got {p}')
    return k


class PatchEmbed(nn.Module, metaclass=ABCMeta):
    """Base class of the patch-embed slot: image to token map (DESIGN.md §3).

    Constructor: ``(in_channels: int, embed_dims: int, patch_size: int, **variant_kwargs)``, injected by the encoder;
    the embed keeps ``self.patch_size``.
    """

    patch_size: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W) -> (B, D, H/p, W/p)``; H, W multiples of ``p``."""


class OutputHead(nn.Module, metaclass=ABCMeta):
    """Base class of the output-head slot: token map to image (DESIGN.md §3).

    Constructor: ``(in_channels: int, out_channels: int, patch_size: int, **variant_kwargs)``, injected by the
    decoder; the head keeps ``self.patch_size`` and names its final weight :attr:`last_layer` (what the adaptive
    GAN / VF weights differentiate against).
    """

    patch_size: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``(B, D, h, w) -> (B, C_out, p*h, p*w)``."""

    @property
    @abstractmethod
    def last_layer(self) -> nn.Parameter:
        """The weight of the head's last layer."""


@MODELS.register_module()
class ConvPatchEmbed(PatchEmbed):
    """One non-overlapping convolution, kernel = stride = ``patch_size`` (ViT / Swin patch embedding).

    Args:
        in_channels: image channels.
        embed_dims: token channels ``D``.
        patch_size: ``p`` (16 for ViT-VAE f16, 2 for Swin-VAE).
        norm_cfg: optional map norm after the conv (``LN2d`` in Swin).
    """

    def __init__(self, in_channels: int = 3, embed_dims: int = 768, patch_size: int = 16,
                 norm_cfg: dict | None = None) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm = build_norm(norm_cfg, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W) -> (B, D, H/p, W/p)``; H, W multiples of p."""
        return self.norm(self.proj(x))


@MODELS.register_module()
class SeqConvPatchEmbed(PatchEmbed):
    """``log2(p)`` x [Conv3x3 stride 2 -> norm -> act], channels ``D/2^(k-1) ... D/2, D`` (DHVT's SOPE, §1.5).

    Args:
        in_channels: image channels.
        embed_dims: token channels ``D`` (output of the last conv).
        patch_size: total stride ``p`` (power of two).
        norm_cfg: map norm after each conv (``GN`` by default: batch-size independent, unlike DHVT's BN).
        act_cfg: activation after each norm (GELU).
        min_channels: floor of the channel ramp (at most ``D``); 1, the default, keeps DHVT's halving ramp
            ``D/2^(k-1)``, e.g. 16 channels in the first stage of a ``D = 128`` micro model against 64 at ``D = 512``.
    """

    def __init__(self, in_channels: int = 3, embed_dims: int = 768, patch_size: int = 16,
                 norm_cfg: dict | None = None, act_cfg: dict | None = None, min_channels: int = 1) -> None:
        super().__init__()
        k = _log2_int(patch_size, 'SeqConvPatchEmbed')
        norm_cfg = norm_cfg or dict(type='GN')
        self.patch_size = patch_size
        if min_channels < 1:
            raise ValueError(f'SeqConvPatchEmbed: min_channels must be >= 1, got {min_channels}')
        floor = min(min_channels, embed_dims)
        chs = [in_channels] + [max(embed_dims // 2 ** (k - 1 - i), floor) for i in range(k)]
        layers: list[nn.Module] = []
        for i in range(k):
            layers += [nn.Conv2d(chs[i], chs[i + 1], 3, stride=2, padding=1), build_norm(norm_cfg, chs[i + 1]),
                       build_act(act_cfg or dict(type='GELU'))]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W) -> (B, D, H/p, W/p)``."""
        return self.layers(x)


@MODELS.register_module()
class PixelShuffleHead(OutputHead):
    """1x1 conv ``D -> hidden * p^2`` -> PixelShuffle(p) -> Conv3x3 ``hidden -> C_out`` (ViT-VAE output, Fig. 2b).

    Args:
        in_channels: token channels ``D``.
        out_channels: image channels.
        patch_size: ``p``.
        hidden_channels: channels after the shuffle (defaults to ``out_channels``, i.e. ``D -> 3 p^2``).
    """

    def __init__(self, in_channels: int = 768, out_channels: int = 3, patch_size: int = 16,
                 hidden_channels: int | None = None) -> None:
        super().__init__()
        hidden = hidden_channels or out_channels
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, hidden * patch_size ** 2, 1)
        self.conv_out = nn.Conv2d(hidden, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, D, h, w) -> (B, C_out, p*h, p*w)``."""
        return self.conv_out(F.pixel_shuffle(self.proj(x), self.patch_size))

    @property
    def last_layer(self) -> nn.Parameter:
        return self.conv_out.weight


@MODELS.register_module()
class SeqConvUpHead(OutputHead):
    """``log2(p)`` x [nearest x2 -> Conv3x3 -> norm -> act], channels ``D/2 ... D/2^k``, then Conv3x3 to ``C_out``.

    The decoder mirror of :class:`SeqConvPatchEmbed` (PAPER.md §1.5, [G]).

    Args:
        in_channels: token channels ``D``.
        out_channels: image channels.
        patch_size: total up-sampling ``p`` (power of two).
        norm_cfg: map norm after each conv. The default ``GN`` with ``min_group_channels=4`` keeps at least 4
            channels per group: the ramp ends at ``D/16`` channels at full resolution (32 at ViT-VAE-T width, 8 at
            the CPU preset's), which plain GN(32) / GN(8) would normalise one channel at a time (InstanceNorm),
            and that head lost to the pixel-shuffle one by 9% in Fig. 3(c) (docs/RESULTS.md).
        act_cfg: as for :class:`SeqConvPatchEmbed`.
        min_channels: floor of the channel ramp.
    """

    def __init__(self, in_channels: int = 768, out_channels: int = 3, patch_size: int = 16,
                 norm_cfg: dict | None = None, act_cfg: dict | None = None, min_channels: int = 8) -> None:
        super().__init__()
        k = _log2_int(patch_size, 'SeqConvUpHead')
        norm_cfg = norm_cfg or dict(type='GN', min_group_channels=4)
        self.patch_size = patch_size
        chs = [in_channels] + [max(in_channels // 2 ** (i + 1), min_channels) for i in range(k)]
        layers: list[nn.Module] = []
        for i in range(k):
            layers += [nn.Upsample(scale_factor=2.0, mode='nearest'), nn.Conv2d(chs[i], chs[i + 1], 3, padding=1),
                       build_norm(norm_cfg, chs[i + 1]), build_act(act_cfg or dict(type='GELU'))]
        self.layers = nn.Sequential(*layers)
        self.conv_out = nn.Conv2d(chs[-1], out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, D, h, w) -> (B, C_out, p*h, p*w)``."""
        return self.conv_out(self.layers(x))

    @property
    def last_layer(self) -> nn.Parameter:
        return self.conv_out.weight


__all__ = ['PatchEmbed', 'OutputHead', 'ConvPatchEmbed', 'SeqConvPatchEmbed', 'PixelShuffleHead', 'SeqConvUpHead']
