"""The Swin Transformer block (window / shifted-window attention) and a Swin stage on ``(B, C, H, W)`` maps."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from transvae.registry import MODELS

from ..layers.norm import build_norm
from ..layers.position import QKTransform, build_position_encoding
from ..layers.window_attention import shifted_window_mask, window_and_shift, window_partition, window_reverse


@MODELS.register_module()
class SwinBlock(nn.Module):
    """Pre-norm Swin block: ``x + WindowAttn(Norm(x))`` then ``x + FFN(Norm(x))``.

    The map is zero-padded (after the norm) to a multiple of the window and cropped back; padding keys are masked
    for real queries. Windows shrink to the grid where it is smaller than ``window_size`` (no shift there).

    Args:
        embed_dims: token channels ``C``.
        head_dim: channels per head (64).
        window_size: window ``W`` (8, PAPER.md Q14).
        shift: shifted windows (every other block in a stage), shift ``W // 2``.
        attn_cfg: registered window attention (``WindowAttention``; injected ``embed_dims, head_dim, window_size``).
        ffn_cfg: registered FFN (``PointwiseFFN`` ratio 4 by default).
        norm_cfg: pre-norm of both branches.
    """

    def __init__(self, embed_dims: int, head_dim: int = 64, window_size: int = 8, shift: bool = False,
                 attn_cfg: dict | None = None, ffn_cfg: dict | None = None, norm_cfg: dict | None = None) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = shift
        norm_cfg = norm_cfg or dict(type='LN')
        attn_cfg = copy.deepcopy(attn_cfg or dict(type='WindowAttention', qk_norm_cfg=None))
        ffn_cfg = copy.deepcopy(ffn_cfg or dict(type='PointwiseFFN', ffn_ratio=4.0))
        self.norm1 = build_norm(norm_cfg, embed_dims)
        self.attn = MODELS.build(attn_cfg, default_args=dict(embed_dims=embed_dims, head_dim=head_dim,
                                                             window_size=window_size))
        self.norm2 = build_norm(norm_cfg, embed_dims)
        self.ffn = MODELS.build(ffn_cfg, default_args=dict(embed_dims=embed_dims))

    def window(self, hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """Effective ``(window, shift)`` of this block for a token grid ``hw``."""
        return window_and_shift(hw, self.window_size, self.shift)

    def forward(self, x: Tensor, hw: tuple[int, int], pos: QKTransform | None = None) -> Tensor:
        """``x`` ``(B, N, C)``, ``N = H * W``; ``pos``: optional window-local q / k transform of the stage's PE."""
        b, n, c = x.shape
        h, w = hw
        (wh, ww), (sh, sw) = self.window(hw)
        y = self.norm1(x).view(b, h, w, c)
        ph, pw = (-h) % wh, (-w) % ww
        if ph or pw:
            y = F.pad(y, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        if sh or sw:
            y = torch.roll(y, shifts=(-sh, -sw), dims=(1, 2))
        mask = shifted_window_mask((hp, wp), (h, w), (wh, ww), (sh, sw), device=y.device, dtype=y.dtype)
        y = self.attn(window_partition(y, (wh, ww)), (wh, ww), pos, mask)  # (B*nW, wh*ww, C)
        y = window_reverse(y, (wh, ww), (hp, wp))  # (B, Hp, Wp, C)
        if sh or sw:
            y = torch.roll(y, shifts=(sh, sw), dims=(1, 2))
        x = x + y[:, :h, :w].reshape(b, n, c)
        return x + self.ffn(self.norm2(x), hw)


class SwinStage(nn.Module):
    """``depth`` Swin blocks at one resolution, shifting every other block; maps ``(B, C, H, W)`` in and out.

    Args:
        channels: ``C``.
        depth: number of blocks.
        block_cfg: registered block (``SwinBlock``); ``shift`` is set per block (odd blocks shift).
        head_dim: attention head dim.
        window_size: window ``W``.
        pe_cfg: optional rotary encoding evaluated on the window-local grid (``None``: bias only, Swin-v1).
        with_cp: gradient checkpointing of every block.
    """

    def __init__(self, channels: int, depth: int, block_cfg: dict, head_dim: int = 64, window_size: int = 8,
                 pe_cfg: dict | None = None, with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.window_size = window_size
        self.pe = build_position_encoding(pe_cfg, head_dim=head_dim, embed_dims=channels)
        self.blocks = nn.ModuleList(
            MODELS.build(copy.deepcopy(block_cfg), default_args=dict(embed_dims=channels, head_dim=head_dim,
                                                                     window_size=window_size, shift=i % 2 == 1))
            for i in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        hw = (h, w)
        t = self.pe.embed_tokens(x.flatten(2).transpose(1, 2), hw)  # (B, N, C)
        pos = self.pe.qk_transform(window_and_shift(hw, self.window_size, False)[0])  # window-local
        for blk in self.blocks:
            if self.with_cp and t.requires_grad:
                t = cp.checkpoint(blk, t, hw, pos, use_reentrant=False)
            else:
                t = blk(t, hw, pos)
        return t.transpose(1, 2).reshape(b, c, h, w)


__all__ = ['SwinBlock', 'SwinStage']
