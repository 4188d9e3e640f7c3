"""The attention slot: its base class :class:`Attention` and global multi-head self-attention.

Global attention always runs through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where the
backend has them). Window attention (Swin) is the same slot: ``window_attention.py``.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS

from .norm import build_norm
from .position import QKTransform


class Attention(nn.Module, metaclass=ABCMeta):
    """Base class of the attention slot: the token mixer of a Transformer block (DESIGN.md §3).

    Constructor: ``(embed_dims: int, head_dim: int, qk_norm_cfg: dict | None, **variant_kwargs)``; the block injects
    ``embed_dims`` and ``head_dim`` (window attention also ``window_size``). Forward: ``(x, hw, pos) -> x`` with
    ``x`` ``(B, N, C)`` on an ``hw`` grid; ``pos`` is the stage's position transform of the per-head queries and keys
    (:meth:`PositionEncoding.qk_transform`, applied after the Q/K norm) or ``None``: an attention knows no encoding.
    """

    @abstractmethod
    def forward(self, x: Tensor, hw: tuple[int, int], pos: QKTransform | None = None) -> Tensor:
        """``x`` ``(B, N, C)`` with ``N = H * W`` for ``hw = (H, W)`` -> ``(B, N, C)``."""


@MODELS.register_module()
class MultiHeadSelfAttention(Attention):
    """Global multi-head self-attention with optional per-head Q/K norm and a position transform of Q and K.

    Order (TransVAE Fig. 2e): ``x -> qkv linear -> per-head norm of Q and K -> position transform of Q and K (RoPE)
    -> SDPA -> proj``.

    Args:
        embed_dims: token channels ``C``; must be divisible by ``head_dim``.
        head_dim: channels per head (64 in every paper model).
        qk_norm_cfg: norm applied per head to Q and K (``RMSNorm`` in TransVAE, ``LN`` or ``None`` in ablations).
        qkv_bias: bias of the QKV projection.
    """

    def __init__(self, embed_dims: int, head_dim: int = 64, qk_norm_cfg: dict | None = None,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        if embed_dims % head_dim:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by head_dim={head_dim}')
        self.num_heads = embed_dims // head_dim
        self.head_dim = head_dim
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.q_norm = build_norm(qk_norm_cfg, head_dim)
        self.k_norm = build_norm(qk_norm_cfg, head_dim)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: Tensor, hw: tuple[int, int], pos: QKTransform | None = None) -> Tensor:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)``; ``pos``: the stage's ``PositionEncoding.qk_transform(hw)`` or ``None``."""
        b, n, c = x.shape
        # split the token-major (B, N, 3, heads, hd) view, then transpose each: the backward stacks the three grads
        # straight into that layout, with no copy before the projection's backward
        q, k, v = (t.transpose(1, 2) for t in self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).unbind(2))
        q, k = self.q_norm(q), self.k_norm(k)
        if pos is not None:
            q, k = pos(q, k)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


__all__ = ['Attention', 'MultiHeadSelfAttention']
