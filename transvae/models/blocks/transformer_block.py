"""Pre-norm Transformer blocks: the TransVAE block and the plain ViT block share one class body."""
from __future__ import annotations

import copy

from torch import Tensor, nn

from transvae.registry import MODELS

from ..layers.norm import build_norm
from ..layers.position import QKTransform
from .base import TokenBlock


@MODELS.register_module()
class TransVAEBlock(TokenBlock):
    """``x + Attn(Norm(x), hw, pos)`` then ``x + FFN(Norm(x), hw)`` (pre-norm, no LayerScale, no dropout).

    Defaults are the paper's final block: global attention with head dim 64, per-head RMSNorm on Q and K, 2D RoPE
    (angles passed in by the stage) and the FullConv FFN with ratio 1.

    Args:
        embed_dims: token channels ``C``.
        head_dim: channels per head.
        attn_cfg: registered attention (slot: ``embed_dims, head_dim, qk_norm_cfg``).
        ffn_cfg: registered FFN (slot: ``embed_dims, ffn_ratio, act_cfg``).
        norm_cfg: pre-norm of both branches.
    """

    default_attn_cfg: dict = dict(type='MultiHeadSelfAttention', qk_norm_cfg=dict(type='RMSNorm'))
    default_ffn_cfg: dict = dict(type='FullConvFFN', ffn_ratio=1.0)

    def __init__(self, embed_dims: int, head_dim: int = 64, attn_cfg: dict | None = None,
                 ffn_cfg: dict | None = None, norm_cfg: dict | None = None) -> None:
        super().__init__()
        norm_cfg = norm_cfg or dict(type='LN')
        attn_cfg = copy.deepcopy(attn_cfg if attn_cfg is not None else self.default_attn_cfg)
        ffn_cfg = copy.deepcopy(ffn_cfg if ffn_cfg is not None else self.default_ffn_cfg)
        self.norm1 = build_norm(norm_cfg, embed_dims)
        self.attn = MODELS.build(attn_cfg, default_args=dict(embed_dims=embed_dims, head_dim=head_dim))
        self.norm2 = build_norm(norm_cfg, embed_dims)
        self.ffn = MODELS.build(ffn_cfg, default_args=dict(embed_dims=embed_dims))

    def forward(self, x: Tensor, hw: tuple[int, int], pos: QKTransform | None = None) -> Tensor:
        """``x`` ``(B, N, C)`` with ``N = H * W`` -> ``(B, N, C)``."""
        x = x + self.attn(self.norm1(x), hw, pos)
        return x + self.ffn(self.norm2(x), hw)


@MODELS.register_module()
class ViTBlock(TransVAEBlock):
    """The plain ViT block of the ViT-VAE baseline: no Q/K norm, point-wise FFN with ratio 4."""

    default_attn_cfg: dict = dict(type='MultiHeadSelfAttention', qk_norm_cfg=None)
    default_ffn_cfg: dict = dict(type='PointwiseFFN', ffn_ratio=4.0)
