"""TransVAE's hybrid encoder and decoder (PAPER.md §1): CNN stages at high resolution, Transformer stages below.

Encoder (f = 2^(S-1) for S stages)::

    Conv3x3(3 -> C0) -> [stage_0] -> Down -> [stage_1] -> Down -> ... -> [stage_{S-1}] -> GN -> SiLU -> Conv3x3(-> 2d)

Stages ``0..num_cnn_stages-1`` are ResBlock stages; later stages are Transformer stages whose 2D RoPE uses the
integer token grid of the actual input. The decoder mirrors it. With ``latent_shortcut=True`` (part of the DC
path) the latent projections also carry DC-AE's parameter-free channel-averaging / duplicating shortcuts.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from transvae.registry import MODELS

from ..blocks.stages import ConvStage, TransformerStage
from ..layers.norm import build_act, build_norm
from ..layers.sampling import build_sampler, channel_to_space_duplicate, space_to_channel_average
from .base import DecoderBase, EncoderBase, InitCfg, Segment


def _check(widths: Sequence[int], depths: Sequence[int], num_cnn_stages: int) -> None:
    if len(widths) != len(depths):
        raise ValueError(f'widths {list(widths)} and depths {list(depths)} must have the same length')
    if not 0 <= num_cnn_stages <= len(widths):
        raise ValueError(f'num_cnn_stages={num_cnn_stages} must be within 0..{len(widths)}')


def _build_stage(i: int, width: int, depth: int, num_cnn_stages: int, cnn_block_cfg: dict, block_cfg: dict,
                 pe_cfg: dict | None, head_dim: int, with_cp: bool) -> nn.Module:
    if i < num_cnn_stages:
        return ConvStage(width, depth, cnn_block_cfg, with_cp=with_cp)
    return TransformerStage(width, depth, block_cfg, pe_cfg, head_dim, with_cp=with_cp)


@MODELS.register_module()
class TransVAEEncoder(EncoderBase):
    """Hybrid CNN + Transformer encoder.

    Args:
        widths: channels per stage, e.g. ``[128, 128, 256, 256, 512]`` (TransVAE-T f16d32).
        depths: blocks per stage.
        latent_channels: ``d``.
        num_cnn_stages: leading ResBlock stages (2 in the paper).
        block_cfg: Transformer block (shared with the decoder so one key changes both).
        cnn_block_cfg: convolutional block of the CNN stages.
        down_cfg: down-sampler between stages (``DCDownsample`` = DC path on; ``ConvPixelUnshuffleDown`` = off).
        pe_cfg: position encoding of every Transformer stage.
        head_dim: attention head dim (64).
        latent_shortcut: add the DC averaging shortcut to the latent mean projection.
        norm_out_cfg / act_out_cfg: norm and activation before the latent projection.
        in_channels: image channels.
        double_z: output mean and log-variance (``2d`` channels) rather than ``d``.
        with_cp: gradient checkpointing of every stage (saves activation memory when training large sizes).
        channels_last: run on channels-last memory (:class:`~.base.EncoderBase`; on by default: the Transformer
            stages' tokens are that memory, so the layout costs no copies there and the full-resolution convolutions
            run faster: 0.92-0.96x the NCHW encode + decode time of TransVAE-T at 256² on the 2-core CPU; README
            "Performance").
    """

    def __init__(self, widths: Sequence[int], depths: Sequence[int], latent_channels: int,
                 num_cnn_stages: int = 2, block_cfg: dict | None = None, cnn_block_cfg: dict | None = None,
                 down_cfg: dict | None = None, pe_cfg: dict | None = None, head_dim: int = 64,
                 latent_shortcut: bool = True, norm_out_cfg: dict | None = None, act_out_cfg: dict | None = None,
                 in_channels: int = 3, double_z: bool = True, with_cp: bool = False, channels_last: bool = True,
                 init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg, channels_last=channels_last)
        _check(widths, depths, num_cnn_stages)
        block_cfg = copy.deepcopy(block_cfg or dict(type='TransVAEBlock'))
        cnn_block_cfg = copy.deepcopy(cnn_block_cfg or dict(type='ResBlock'))
        down_cfg = down_cfg or dict(type='DCDownsample')
        pe_cfg = dict(type='RoPE2D') if pe_cfg is None else pe_cfg
        self.widths, self.depths = list(widths), list(depths)
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.downsample_factor = 2 ** (len(widths) - 1)
        self.latent_shortcut = latent_shortcut
        self.double_z = double_z

        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.downs = nn.ModuleList(build_sampler(down_cfg, widths[i - 1], widths[i]) for i in range(1, len(widths)))
        self.stages = nn.ModuleList(
            _build_stage(i, w, d, num_cnn_stages, cnn_block_cfg, block_cfg, pe_cfg, head_dim, with_cp)
            for i, (w, d) in enumerate(zip(widths, depths)))
        self.norm_out = build_norm(norm_out_cfg or dict(type='GN'), widths[-1])
        self.act_out = build_act(act_out_cfg or dict(type='SiLU'))
        self.conv_out = nn.Conv2d(widths[-1], (2 if double_z else 1) * latent_channels, 3, padding=1)

    def segments(self) -> list[Segment]:
        """``conv_in``, then ``stages.0``, ``downs.0``, ``stages.1``, ..., then the head (norm, act, latent conv and
        the DC shortcut). Input ``(B, 3, H, W)`` with H, W multiples of f; output ``(B, 2d, H/f, W/f)``."""
        segs = [Segment.of('stem', self.conv_in)]
        for i, stage in enumerate(self.stages):
            if i > 0:
                segs.append(Segment.of(f'downs.{i - 1}', self.downs[i - 1], resamples=True))  # (B, C_i, H/2^i, W/2^i)
            segs.append(Segment.of(f'stages.{i}', stage))
        return segs + [Segment('head', self._head, (self.norm_out, self.act_out, self.conv_out))]

    def _head(self, h: Tensor) -> Tensor:
        """``(B, C_{S-1}, h, w) -> (B, 2d, h, w)``; with ``latent_shortcut`` the mean gets the channel average."""
        out = self.conv_out(self.act_out(self.norm_out(h)))
        if self.latent_shortcut:
            d = self.latent_channels
            mean = out[:, :d] + space_to_channel_average(h, d, factor=1)  # (B, d, h, w)
            out = torch.cat([mean, out[:, d:]], dim=1)
        return out

    def get_last_layer(self) -> nn.Parameter:
        return self.conv_out.weight


@MODELS.register_module()
class TransVAEDecoder(DecoderBase):
    """Mirror of :class:`TransVAEEncoder`: Transformer stages at low resolution first, CNN stages last.

    Args:
        widths, depths, latent_channels, num_cnn_stages, block_cfg, cnn_block_cfg, pe_cfg, head_dim, with_cp:
            as for the encoder, listed from the highest resolution (stage 0) to the lowest.
        up_cfg: up-sampler between stages (``DCUpsample`` = DC path on; ``InterpConvUp`` = off).
        latent_shortcut: add the DC duplicating shortcut to the latent in-projection.
        out_channels: image channels.
        channels_last: as for the encoder.
    """

    def __init__(self, widths: Sequence[int], depths: Sequence[int], latent_channels: int,
                 num_cnn_stages: int = 2, block_cfg: dict | None = None, cnn_block_cfg: dict | None = None,
                 up_cfg: dict | None = None, pe_cfg: dict | None = None, head_dim: int = 64,
                 latent_shortcut: bool = True, norm_out_cfg: dict | None = None, act_out_cfg: dict | None = None,
                 out_channels: int = 3, with_cp: bool = False, channels_last: bool = True,
                 init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg, channels_last=channels_last)
        _check(widths, depths, num_cnn_stages)
        block_cfg = copy.deepcopy(block_cfg or dict(type='TransVAEBlock'))
        cnn_block_cfg = copy.deepcopy(cnn_block_cfg or dict(type='ResBlock'))
        up_cfg = up_cfg or dict(type='DCUpsample')
        pe_cfg = dict(type='RoPE2D') if pe_cfg is None else pe_cfg
        self.widths, self.depths = list(widths), list(depths)
        self.latent_channels = latent_channels
        self.upsample_factor = 2 ** (len(widths) - 1)
        self.latent_shortcut = latent_shortcut

        self.conv_in = nn.Conv2d(latent_channels, widths[-1], 3, padding=1)
        # stages[i] runs at the resolution of encoder stage i; ups[i] maps stage i+1 -> stage i.
        self.stages = nn.ModuleList(
            _build_stage(i, w, d, num_cnn_stages, cnn_block_cfg, block_cfg, pe_cfg, head_dim, with_cp)
            for i, (w, d) in enumerate(zip(widths, depths)))
        self.ups = nn.ModuleList(build_sampler(up_cfg, widths[i + 1], widths[i]) for i in range(len(widths) - 1))
        self.norm_out = build_norm(norm_out_cfg or dict(type='GN'), widths[0])
        self.act_out = build_act(act_out_cfg or dict(type='SiLU'))
        self.conv_out = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def segments(self) -> list[Segment]:
        """The stem (``conv_in`` and the DC shortcut), then ``stages.{S-1}``, ``ups.{S-2}``, ..., ``stages.0``, then
        the head. Input ``(B, d, h, w)``; output ``(B, 3, f*h, f*w)``."""
        segs = [Segment('stem', self._stem, (self.conv_in,))]
        for i in range(len(self.stages) - 1, -1, -1):
            segs.append(Segment.of(f'stages.{i}', self.stages[i]))
            if i > 0:
                segs.append(Segment.of(f'ups.{i - 1}', self.ups[i - 1], resamples=True))  # (B, C_{i-1}, 2h, 2w)
        return segs + [Segment.of('head', self.norm_out, self.act_out, self.conv_out)]

    def _stem(self, z: Tensor) -> Tensor:
        """``(B, d, h, w) -> (B, C_{S-1}, h, w)``; with ``latent_shortcut`` plus the duplicated latent."""
        h = self.conv_in(z)
        if self.latent_shortcut:
            h = h + channel_to_space_duplicate(z, self.widths[-1], factor=1)
        return h

    def get_last_layer(self) -> nn.Parameter:
        return self.conv_out.weight
