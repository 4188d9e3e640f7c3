"""The LightningDiT block and output layer: adaLN-Zero modulation around the core's attention and FFN slots."""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from transvae.models.layers import build_norm
from transvae.registry import MODELS


def modulate(x: Tensor, shift: Tensor | None, scale: Tensor) -> Tensor:
    """``x * (1 + scale) + shift`` with per-sample ``shift`` / ``scale`` ``(B, C)`` broadcast over tokens of ``x``
    ``(B, N, C)``; ``shift=None``: ``x * (1 + scale)`` (adaLN without shift)."""
    if shift is None:
        return x * (1 + scale.unsqueeze(1))
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class LightningDiTBlock(nn.Module):
    """Pre-norm Transformer block conditioned by adaLN-Zero (shift, scale and gate for each branch).

    ``x = x + g1 * attn(modulate(norm1(x), s1, c1)); x = x + g2 * ffn(modulate(norm2(x), s2, c2))`` with the six
    ``(B, C)`` vectors produced from the conditioning ``c`` by ``SiLU -> Linear(C, 6C)``. That linear layer is
    zero-initialised, so a freshly built block is the identity.

    Args:
        embed_dims: token width ``C``.
        head_dim: channels per attention head.
        norm_cfg: the two pre-norms (``RMSNorm`` in LightningDiT).
        attn_cfg: a registered attention of the core slot (``MultiHeadSelfAttention``, no QK-norm).
        ffn_cfg: a registered FFN of the core slot (``SwiGLUFFN`` with ratio 4).
        wo_shift: adaLN without the shift terms (the reference's ``wo_shift`` model option, off in every released
            LightningDiT): ``Linear(C, 4C)`` gives scale and gate of each branch, ``modulate`` only scales.
    """

    def __init__(self, embed_dims: int, head_dim: int, norm_cfg: dict, attn_cfg: dict, ffn_cfg: dict,
                 wo_shift: bool = False) -> None:
        super().__init__()
        self.wo_shift = bool(wo_shift)
        self.norm1 = build_norm(norm_cfg, embed_dims)
        self.attn = MODELS.build(attn_cfg, default_args=dict(embed_dims=embed_dims, head_dim=head_dim))
        self.norm2 = build_norm(norm_cfg, embed_dims)
        self.ffn = MODELS.build(ffn_cfg, default_args=dict(embed_dims=embed_dims))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(embed_dims, (4 if wo_shift else 6) * embed_dims))

    def zero_init(self) -> None:
        """adaLN-Zero: all modulation outputs 0 (gates closed, so the block returns its input)."""
        nn.init.zeros_(self.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.adaLN_modulation[-1].bias)

    def forward(self, x: Tensor, c: Tensor, hw: tuple[int, int], qk_transform: Callable | None = None) -> Tensor:
        """``x`` ``(B, N, C)``, ``c`` ``(B, C)``, ``qk_transform`` the position encoding's ``qk_transform(hw)``
        (RoPE on Q and K) or ``None`` -> ``(B, N, C)``."""
        if self.wo_shift:
            (scale1, gate1, scale2, gate2), shift1, shift2 = self.adaLN_modulation(c).chunk(4, dim=1), None, None
        else:
            shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1), hw, qk_transform)
        x = x + gate2.unsqueeze(1) * self.ffn(modulate(self.norm2(x), shift2, scale2), hw)
        return x


class FinalLayer(nn.Module):
    """``norm -> modulate(shift, scale) -> Linear(C, p*p*C_out)``; modulation and projection zero-initialised.

    Args:
        embed_dims: token width ``C``.
        patch_size: ``p``.
        out_channels: latent channels ``C_out``.
        norm_cfg: the norm (``RMSNorm``).
    """

    def __init__(self, embed_dims: int, patch_size: int, out_channels: int, norm_cfg: dict) -> None:
        super().__init__()
        self.norm = build_norm(norm_cfg, embed_dims)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(embed_dims, 2 * embed_dims))
        self.linear = nn.Linear(embed_dims, patch_size * patch_size * out_channels)

    def zero_init(self) -> None:
        for layer in (self.adaLN_modulation[-1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """``(B, N, C)``, ``(B, C)`` -> ``(B, N, p*p*C_out)``."""
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))
