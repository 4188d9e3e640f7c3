"""The Swin Transformer block (window / shifted-window attention); a Swin stage is ``TransformerStage`` with
``window_size`` (``stages.py``)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS

from ..layers.norm import build_norm
from ..layers.position import QKTransform
from ..layers.window_attention import shifted_window_mask, window_and_shift, window_partition, window_reverse
from .base import TokenBlock


@MODELS.register_module()
class SwinBlock(TokenBlock):
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


__all__ = ['SwinBlock']
