"""The LDM / SD-VAE / VA-VAE convolutional encoder and decoder (the CNN-VAE baseline, PAPER.md §2).

Attention is given by level index (not by resolution) so the architecture does not depend on the input size:
``attn_levels=[4]`` with five levels is LDM's "attention at 16" for 256² inputs. The paper's §3 ablations remove
all attention (``attn_levels=[]``, ``mid_attn=False``).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from transvae.registry import MODELS

from ..blocks.attn_block import AttnBlock
from ..blocks.resblock import ResBlock
from ..layers.norm import build_norm
from ..layers.sampling import build_sampler
from .base import DecoderBase, EncoderBase, InitCfg, Segment


class _Level(nn.Module):
    """ResBlocks (each optionally followed by an AttnBlock) at one resolution."""

    def __init__(self, in_ch: int, out_ch: int, num_blocks: int, with_attn: bool, norm_cfg: dict) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for j in range(num_blocks):
            self.blocks.append(ResBlock(in_ch if j == 0 else out_ch, out_ch, norm_cfg=norm_cfg))
            if with_attn:
                self.blocks.append(AttnBlock(out_ch, norm_cfg=norm_cfg))

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x


class _MidBlock(nn.Sequential):
    """``ResBlock -> [AttnBlock] -> ResBlock`` at the lowest resolution."""

    def __init__(self, ch: int, with_attn: bool, norm_cfg: dict) -> None:
        attn = AttnBlock(ch, norm_cfg=norm_cfg) if with_attn else nn.Identity()
        super().__init__(ResBlock(ch, norm_cfg=norm_cfg), attn, ResBlock(ch, norm_cfg=norm_cfg))


@MODELS.register_module()
class CNNEncoder(EncoderBase):
    """LDM encoder.

    Args:
        base_channels: ``ch`` (128 for the Tiny / SD-VAE size).
        channel_mults: per-level multipliers (``[1, 1, 2, 2, 4]`` for f16).
        num_res_blocks: ResBlocks per level (2).
        latent_channels: ``d``.
        attn_levels: levels with an AttnBlock after each ResBlock.
        mid_attn: attention in the mid-block.
        down_cfg: down-sampler (LDM's ``StridedConvDown`` keeps the channel count).
        norm_cfg: every map norm (LDM / diffusers: ``GroupNorm(32)``, diffusers' ``norm_num_groups``; the CPU
            preset's quarter widths use 8 groups, which keeps LDM's 4-16 channels per group).
        quant_conv: end with LDM's ``quant_conv``, a 1x1 conv on the moments ``(2d -> 2d)`` (SD / SDXL / VA-VAE;
            diffusers' ``use_quant_conv``; SD3.5 and FLUX have none). Off by default: no module, no parameters.
        channels_last: run on channels-last memory (:class:`~.base.EncoderBase`); on by default, as in
            :class:`~.hybrid.TransVAEEncoder`, so the two families are timed alike (diffusers' AutoencoderKL runs NCHW).
    """

    def __init__(self, base_channels: int, channel_mults: Sequence[int], num_res_blocks: int,
                 latent_channels: int, attn_levels: Sequence[int] = (), mid_attn: bool = True,
                 down_cfg: dict | None = None, in_channels: int = 3, double_z: bool = True,
                 norm_cfg: dict | None = None, quant_conv: bool = False, channels_last: bool = True,
                 init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg, channels_last=channels_last)
        down_cfg = down_cfg or dict(type='StridedConvDown')
        norm_cfg = norm_cfg or dict(type='GN')
        chs = [base_channels * m for m in channel_mults]
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.downsample_factor = 2 ** (len(chs) - 1)
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = base_channels
        for i, ch in enumerate(chs):
            self.levels.append(_Level(prev, ch, num_res_blocks, i in attn_levels, norm_cfg))
            if i < len(chs) - 1:
                self.downs.append(build_sampler(down_cfg, ch, ch))
            prev = ch
        self.mid = _MidBlock(prev, mid_attn, norm_cfg)
        self.norm_out = build_norm(norm_cfg, prev)
        self.act_out = nn.SiLU()
        moments = (2 if double_z else 1) * latent_channels
        self.conv_out = nn.Conv2d(prev, moments, 3, padding=1)
        self.quant_conv = nn.Conv2d(moments, moments, 1) if quant_conv else None

    def segments(self) -> list[Segment]:
        """``conv_in``, then ``levels.0``, ``downs.0``, ``levels.1``, ..., ``mid``, then the head (with the
        ``quant_conv`` when there is one).

        Input ``(B, 3, H, W)``; output ``(B, 2d, H/f, W/f)``.
        """
        segs = [Segment.of('stem', self.conv_in)]
        for i, level in enumerate(self.levels):
            segs.append(Segment(f'levels.{i}', level, tuple(level.blocks)))
            if i < len(self.downs):
                segs.append(Segment.of(f'downs.{i}', self.downs[i], resamples=True))
        segs.append(Segment('mid', self.mid, tuple(self.mid)))
        quant = (self.quant_conv,) if self.quant_conv is not None else ()
        return segs + [Segment.of('head', self.norm_out, self.act_out, self.conv_out, *quant)]

    def get_last_layer(self) -> nn.Parameter:
        return self.conv_out.weight


@MODELS.register_module()
class CNNDecoder(DecoderBase):
    """LDM decoder (``num_res_blocks + 1`` ResBlocks per level), mirror of :class:`CNNEncoder` (same arguments).

    ``post_quant_conv``: start with LDM's ``post_quant_conv``, a 1x1 conv on the latent ``(d -> d)`` (diffusers'
    ``use_post_quant_conv``); off by default (no module).
    """

    def __init__(self, base_channels: int, channel_mults: Sequence[int], num_res_blocks: int,
                 latent_channels: int, attn_levels: Sequence[int] = (), mid_attn: bool = True,
                 up_cfg: dict | None = None, out_channels: int = 3, norm_cfg: dict | None = None,
                 post_quant_conv: bool = False, channels_last: bool = True, init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg, channels_last=channels_last)
        up_cfg = up_cfg or dict(type='InterpConvUp')
        norm_cfg = norm_cfg or dict(type='GN')
        chs = [base_channels * m for m in channel_mults]
        self.latent_channels = latent_channels
        self.upsample_factor = 2 ** (len(chs) - 1)
        self.conv_in = nn.Conv2d(latent_channels, chs[-1], 3, padding=1)
        self.mid = _MidBlock(chs[-1], mid_attn, norm_cfg)
        # levels[k] / ups[k] run from the lowest resolution (k = 0) upwards.
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        prev = chs[-1]
        for i in range(len(chs) - 1, -1, -1):
            self.levels.append(_Level(prev, chs[i], num_res_blocks + 1, i in attn_levels, norm_cfg))
            prev = chs[i]
            if i > 0:
                self.ups.append(build_sampler(up_cfg, prev, prev))
        self.norm_out = build_norm(norm_cfg, prev)
        self.act_out = nn.SiLU()
        self.conv_out = nn.Conv2d(prev, out_channels, 3, padding=1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1) if post_quant_conv else None

    def segments(self) -> list[Segment]:
        """``conv_in`` (after the ``post_quant_conv`` when there is one), ``mid``, then ``levels.0`` (lowest
        resolution), ``ups.0``, ``levels.1``, ..., then the head.

        Input ``(B, d, h, w)``; output ``(B, 3, f*h, f*w)``.
        """
        quant = (self.post_quant_conv,) if self.post_quant_conv is not None else ()
        segs = [Segment.of('stem', *quant, self.conv_in), Segment('mid', self.mid, tuple(self.mid))]
        for k, level in enumerate(self.levels):
            segs.append(Segment(f'levels.{k}', level, tuple(level.blocks)))
            if k < len(self.ups):
                segs.append(Segment.of(f'ups.{k}', self.ups[k], resamples=True))
        return segs + [Segment.of('head', self.norm_out, self.act_out, self.conv_out)]

    def get_last_layer(self) -> nn.Parameter:
        return self.conv_out.weight
