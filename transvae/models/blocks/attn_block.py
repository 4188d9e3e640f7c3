"""LDM's single-head spatial self-attention block (CNN-VAE stage attention and mid-block)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS

from ..layers.norm import build_norm
from .base import ConvBlock


@MODELS.register_module()
class AttnBlock(ConvBlock):
    """``x + proj(SDPA(q, k, v))`` with 1x1-conv projections on a GroupNorm-ed ``(B, C, H, W)`` map."""

    def __init__(self, in_channels: int, norm_cfg: dict | None = None) -> None:
        super().__init__()
        self.norm = build_norm(norm_cfg or dict(type='GN'), in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, 1)
        self.k = nn.Conv2d(in_channels, in_channels, 1)
        self.v = nn.Conv2d(in_channels, in_channels, 1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (m(y).flatten(2).transpose(1, 2)[:, None] for m in (self.q, self.k, self.v))  # (B, 1, N, C)
        out = F.scaled_dot_product_attention(q, k, v)[:, 0].reshape(b, h, w, c).permute(0, 3, 1, 2)  # channels-last view
        return x + self.proj_out(out)
