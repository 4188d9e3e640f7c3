"""A subclass of a registered block: TransVAEBlock with LayerScale (CaiT, Touvron et al. 2021), registered under a
new name. The paper's block has no LayerScale; this shows the "subclass a registered module" route for a variant."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from transvae.models.blocks import TransVAEBlock
from transvae.models.layers.position import QKTransform
from transvae.registry import MODELS


@MODELS.register_module()
class LayerScaleTransVAEBlock(TransVAEBlock):
    """``x + g1 * Attn(Norm(x))`` then ``x + g2 * FFN(Norm(x))`` with learnable per-channel ``g1, g2``.

    Args:
        layer_scale_init: initial value of every entry of ``g1`` and ``g2``.
        **kwargs: :class:`~transvae.models.blocks.TransVAEBlock` arguments (``embed_dims``, ``head_dim``,
            ``attn_cfg``, ``ffn_cfg``, ``norm_cfg``).
    """

    def __init__(self, embed_dims: int, layer_scale_init: float = 1e-2, **kwargs) -> None:
        super().__init__(embed_dims, **kwargs)
        self.gamma1 = nn.Parameter(torch.full((embed_dims, ), layer_scale_init))
        self.gamma2 = nn.Parameter(torch.full((embed_dims, ), layer_scale_init))

    def forward(self, x: Tensor, hw: tuple[int, int], pos: QKTransform | None = None) -> Tensor:
        """``x`` ``(B, N, C)`` with ``N = H * W`` -> ``(B, N, C)``."""
        x = x + self.gamma1 * self.attn(self.norm1(x), hw, pos)
        return x + self.gamma2 * self.ffn(self.norm2(x), hw)
