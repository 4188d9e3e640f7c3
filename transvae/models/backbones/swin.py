"""The hierarchical Swin-VAE baseline (PAPER.md §2).

Encoder (f = patch_size * 2^(S-1); 2 * 2^3 = 16 for the paper's 4 stages)::

    PatchEmbed(3 -> C0, k = s = 2) + LN -> [Swin stage 0] -> PatchMerging -> ... -> [Swin stage S-1]
        -> LN -> Conv3x3(C_{S-1} -> 2d)

Decoder::

    Conv3x3(d -> C_{S-1}) -> [Swin stage S-1] -> PatchExpanding -> ... -> [Swin stage 0] -> LN
        -> PixelShuffleHead(C0 -> 3, x2)

Window attention uses window 8 (shrunk to the grid when smaller), shifted windows in every other block of a stage,
and Swin-v1's relative position bias (see ``layers/window_attention.py``). Any input that is a multiple of f works:
each block pads its map to a multiple of the window, masks the padding and crops back.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import nn

from transvae.registry import MODELS

from ..blocks.stages import TransformerStage
from ..layers.norm import build_norm
from ..layers.sampling import build_sampler
from .base import DecoderBase, EncoderBase, InitCfg, Segment


def _check(widths: Sequence[int], depths: Sequence[int]) -> None:
    if len(widths) != len(depths) or not widths:
        raise ValueError(f'widths {list(widths)} and depths {list(depths)} must be non-empty and of equal length')


@MODELS.register_module()
class SwinEncoder(EncoderBase):
    """Swin-Transformer encoder.

    Args:
        widths: channels per stage (``[96, 192, 384, 768]`` for Tiny).
        depths: blocks per stage.
        latent_channels: ``d``.
        patch_size: stride of the patch embedding (2).
        window_size: attention window (8).
        head_dim: attention head dim (64; PAPER.md Q14).
        block_cfg: block, shared with the decoder (``SwinBlock``).
        pe_cfg: optional window-local rotary encoding (``None``: relative position bias only).
        patch_embed_cfg: patch embedding (``ConvPatchEmbed`` with an ``LN2d``).
        down_cfg: sampler between stages (``PatchMerging``).
        norm_out_cfg: map norm before the latent projection.
        in_channels, double_z, with_cp: as for the other encoders.
    """

    def __init__(self, widths: Sequence[int], depths: Sequence[int], latent_channels: int, patch_size: int = 2,
                 window_size: int = 8, head_dim: int = 64, block_cfg: dict | None = None,
                 pe_cfg: dict | None = None, patch_embed_cfg: dict | None = None, down_cfg: dict | None = None,
                 norm_out_cfg: dict | None = None, in_channels: int = 3, double_z: bool = True,
                 with_cp: bool = False, init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg)
        _check(widths, depths)
        block_cfg = copy.deepcopy(block_cfg or dict(type='SwinBlock'))
        self.widths, self.depths = list(widths), list(depths)
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.downsample_factor = patch_size * 2 ** (len(widths) - 1)
        self.patch_embed = MODELS.build(
            copy.deepcopy(patch_embed_cfg or dict(type='ConvPatchEmbed', norm_cfg=dict(type='LN2d'))),
            default_args=dict(in_channels=in_channels, embed_dims=widths[0], patch_size=patch_size))
        self.stages = nn.ModuleList(
            TransformerStage(w, d, block_cfg, pe_cfg, head_dim, with_cp, window_size) for w, d in zip(widths, depths))
        down_cfg = down_cfg or dict(type='PatchMerging')
        self.downs = nn.ModuleList(build_sampler(down_cfg, widths[i - 1], widths[i]) for i in range(1, len(widths)))
        self.norm_out = build_norm(norm_out_cfg or dict(type='LN2d'), widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], (2 if double_z else 1) * latent_channels, 3, padding=1)

    def segments(self) -> list[Segment]:
        """``patch_embed`` (``(B, 3, H, W)``, H and W multiples of f -> ``(B, C0, H/2, W/2)``), then ``stages.0``,
        ``downs.0``, ..., then the head (map norm, latent conv) -> ``(B, 2d, H/f, W/f)``."""
        segs = [Segment.of('stem', self.patch_embed, resamples=True)]
        for i, stage in enumerate(self.stages):
            if i > 0:
                segs.append(Segment.of(f'downs.{i - 1}', self.downs[i - 1], resamples=True))  # to H/2^(i+1), W/2^(i+1)
            segs.append(Segment.of(f'stages.{i}', stage))
        return segs + [Segment.of('head', self.norm_out, self.conv_out)]

    def get_last_layer(self) -> nn.Parameter:
        return self.conv_out.weight


@MODELS.register_module()
class SwinDecoder(DecoderBase):
    """Mirror of :class:`SwinEncoder` (stages listed from the highest resolution, run from the lowest).

    Args:
        widths, depths, latent_channels, patch_size, window_size, head_dim, block_cfg, pe_cfg, with_cp: as for the
            encoder.
        up_cfg: sampler between stages (``PatchExpanding``: Linear C -> 2C, 2x2 rearrange to C/2).
        head_cfg: output head at ``patch_size`` (``PixelShuffleHead``: 1x1 -> PixelShuffle(2) -> Conv3x3).
        norm_out_cfg: map norm before the head.
        out_channels: image channels.
    """

    def __init__(self, widths: Sequence[int], depths: Sequence[int], latent_channels: int, patch_size: int = 2,
                 window_size: int = 8, head_dim: int = 64, block_cfg: dict | None = None,
                 pe_cfg: dict | None = None, up_cfg: dict | None = None, head_cfg: dict | None = None,
                 norm_out_cfg: dict | None = None, out_channels: int = 3, with_cp: bool = False,
                 init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg)
        _check(widths, depths)
        block_cfg = copy.deepcopy(block_cfg or dict(type='SwinBlock'))
        self.widths, self.depths = list(widths), list(depths)
        self.latent_channels = latent_channels
        self.upsample_factor = patch_size * 2 ** (len(widths) - 1)
        self.conv_in = nn.Conv2d(latent_channels, widths[-1], 3, padding=1)
        self.stages = nn.ModuleList(
            TransformerStage(w, d, block_cfg, pe_cfg, head_dim, with_cp, window_size) for w, d in zip(widths, depths))
        up_cfg = up_cfg or dict(type='PatchExpanding')
        # ups[i] maps stage i+1 -> stage i.
        self.ups = nn.ModuleList(build_sampler(up_cfg, widths[i + 1], widths[i]) for i in range(len(widths) - 1))
        self.norm_out = build_norm(norm_out_cfg or dict(type='LN2d'), widths[0])
        self.head = MODELS.build(copy.deepcopy(head_cfg or dict(type='PixelShuffleHead')),
                                 default_args=dict(in_channels=widths[0], out_channels=out_channels,
                                                   patch_size=patch_size))

    def segments(self) -> list[Segment]:
        """``conv_in`` (``(B, d, h, w) -> (B, C_{S-1}, h, w)``), then ``stages.{S-1}``, ``ups.{S-2}``, ...,
        ``stages.0``, then the head (map norm, output head) -> ``(B, 3, f*h, f*w)``."""
        segs = [Segment.of('stem', self.conv_in)]
        for i in range(len(self.stages) - 1, -1, -1):
            segs.append(Segment.of(f'stages.{i}', self.stages[i]))
            if i > 0:
                segs.append(Segment.of(f'ups.{i - 1}', self.ups[i - 1], resamples=True))  # (B, C_{i-1}, 2h, 2w)
        return segs + [Segment.of('head', self.norm_out, self.head, resamples=True)]

    def get_last_layer(self) -> nn.Parameter:
        return self.head.last_layer


__all__ = ['SwinEncoder', 'SwinDecoder']
