"""Window multi-head self-attention (Swin-VAE baseline) and the window helpers it needs.

Position information: Swin-v1's learnable **relative position bias** table of ``(2W-1)^2 x heads`` entries
(``W`` = the configured window), indexed for the actual window, which may be smaller than ``W`` (and non-square)
when the token grid is smaller than the window. A window-local position transform of Q and K can be passed in as
well (``pos``, e.g. ``RoPE2D.qk_transform`` of the window grid); the Swin-VAE configs use the bias only, as Swin-v1
does.

Attention runs through ``F.scaled_dot_product_attention`` with the bias and the shifted-window / padding mask
folded into one additive float mask.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS

from .attention import Attention
from .norm import build_norm
from .position import QKTransform


def window_and_shift(hw: tuple[int, int], window_size: int, shift: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    """Effective window ``(wh, ww)`` and shift ``(sh, sw)`` for a token grid ``hw``.

    A window shrinks to the grid along a dimension where the grid is not larger than ``window_size``; there is no
    shift along such a dimension (one window covers it), as in Swin.
    """
    win, sh = [], []
    for n in hw:
        if n <= window_size:
            win.append(n)
            sh.append(0)
        else:
            win.append(window_size)
            sh.append(window_size // 2 if shift else 0)
    return (win[0], win[1]), (sh[0], sh[1])


def window_partition(x: Tensor, window: tuple[int, int]) -> Tensor:
    """``(B, H, W, C) -> (B * nW, wh * ww, C)``; H, W multiples of the window."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: Tensor, window: tuple[int, int], hw: tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, wh * ww, C) -> (B, H, W, C)``."""
    wh, ww = window
    h, w = hw
    c = windows.shape[-1]
    x = windows.view(-1, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(padded_hw: tuple[int, int], valid_hw: tuple[int, int], window: tuple[int, int],
                        shift: tuple[int, int], device: torch.device | None = None,
                        dtype: torch.dtype = torch.float32) -> Tensor | None:
    """Additive mask ``(nW, n, n)`` (0 or ``-inf``) for the cyclically shifted, padded grid, or ``None``.

    Query ``q`` may not attend to key ``k`` when they come from different regions of the cyclic shift (Swin), or
    when ``k`` is a padding token and ``q`` is not. Padding queries may attend to padding keys, so no row is fully
    masked (their outputs are cropped away).
    """
    hp, wp = padded_hw
    h, w = valid_hw
    sh, sw = shift
    wh, ww = window
    if not (sh or sw) and (hp, wp) == (h, w):
        return None
    region = torch.zeros(hp, wp, dtype=torch.long, device=device)
    cnt = 0
    for hs in ((0, hp - wh), (hp - wh, hp - sh), (hp - sh, hp)) if sh else ((0, hp),):
        for ws in ((0, wp - ww), (wp - ww, wp - sw), (wp - sw, wp)) if sw else ((0, wp),):
            region[hs[0]:hs[1], ws[0]:ws[1]] = cnt
            cnt += 1
    pad = torch.ones(hp, wp, dtype=torch.bool, device=device)
    pad[:h, :w] = False
    pad = torch.roll(pad, shifts=(-sh, -sw), dims=(0, 1))  # into the shifted frame, like the features
    region = window_partition(region[None, :, :, None], window)[..., 0]  # (nW, n)
    pad = window_partition(pad[None, :, :, None], window)[..., 0]
    blocked = (region[:, :, None] != region[:, None, :]) | (pad[:, None, :] & ~pad[:, :, None])
    mask = torch.zeros(blocked.shape, dtype=dtype, device=device)
    return mask.masked_fill_(blocked, float('-inf'))


@MODELS.register_module()
class WindowAttention(Attention):
    """Multi-head self-attention inside windows, with Swin-v1 relative position bias (an :class:`Attention`).

    The slot's forward on window tokens: ``x`` ``(B * nW, n, C)``, ``hw`` the window, plus an optional ``mask``.

    Args:
        embed_dims: token channels ``C`` (divisible by ``head_dim``).
        head_dim: channels per head (64).
        qk_norm_cfg: per-head norm of Q and K (``None`` in Swin).
        window_size: the largest window ``W`` (8); the bias table has ``(2W-1)^2`` rows.
        qkv_bias: bias of the QKV projection.
        rel_pos_bias: learnable relative position bias (Swin-v1).
    """

    def __init__(self, embed_dims: int, head_dim: int = 64, qk_norm_cfg: dict | None = None, window_size: int = 8,
                 qkv_bias: bool = True, rel_pos_bias: bool = True) -> None:
        super().__init__()
        if embed_dims % head_dim:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by head_dim={head_dim}')
        self.num_heads = embed_dims // head_dim
        self.head_dim = head_dim
        self.window_size = window_size
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.q_norm = build_norm(qk_norm_cfg, head_dim)
        self.k_norm = build_norm(qk_norm_cfg, head_dim)
        self.proj = nn.Linear(embed_dims, embed_dims)
        if rel_pos_bias:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, self.num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        else:
            self.register_parameter('relative_position_bias_table', None)

    def relative_position_bias(self, window: tuple[int, int]) -> Tensor | None:
        """Bias ``(heads, n, n)`` for a ``(wh, ww)`` window (``wh, ww <= window_size``), or ``None``."""
        table = self.relative_position_bias_table
        if table is None:
            return None
        wh, ww = window
        ys, xs = torch.meshgrid(torch.arange(wh, device=table.device), torch.arange(ww, device=table.device),
                                indexing='ij')
        ys, xs = ys.flatten(), xs.flatten()
        span = 2 * self.window_size - 1
        idx = (ys[:, None] - ys[None, :] + self.window_size - 1) * span + (xs[:, None] - xs[None, :]
                                                                          + self.window_size - 1)
        return table[idx].permute(2, 0, 1)  # (heads, n, n)

    def forward(self, x: Tensor, hw: tuple[int, int], pos: QKTransform | None = None,
                mask: Tensor | None = None) -> Tensor:
        """Attention within each window.

        Args:
            x: ``(B * nW, n, C)`` window tokens, ``n = wh * ww``, windows of one image consecutive.
            hw: the window ``(wh, ww)``.
            pos: optional window-local ``PositionEncoding.qk_transform`` (applied to per-head Q and K).
            mask: optional additive mask ``(nW, n, n)`` (shifted windows / padding).

        Returns:
            ``(B * nW, n, C)``.
        """
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B*nW, heads, n, hd)
        q, k = self.q_norm(q), self.k_norm(k)
        if pos is not None:
            q, k = pos(q, k)
        bias = self.relative_position_bias(hw)
        attn_mask = None
        if mask is not None:
            nw = mask.shape[0]
            attn_mask = mask.to(q.dtype)[:, None]  # (nW, 1, n, n)
            if bias is not None:
                attn_mask = attn_mask + bias.to(q.dtype)[None]  # (nW, heads, n, n)
            q, k, v = (t.reshape(bw // nw, nw, self.num_heads, n, self.head_dim) for t in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, nW, heads, n, hd)
            out = out.reshape(bw, self.num_heads, n, self.head_dim)
        else:
            attn_mask = None if bias is None else bias.to(q.dtype)[None]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B*nW, heads, n, hd)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


__all__ = ['WindowAttention', 'window_and_shift', 'window_partition', 'window_reverse', 'shifted_window_mask']
