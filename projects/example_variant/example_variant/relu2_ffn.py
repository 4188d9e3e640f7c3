"""A new FFN: the squared-ReLU MLP (Primer, So et al. 2021) -- one file, registered in transvae's FFN slot."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from transvae.models.layers.ffn import FFN
from transvae.registry import MODELS


@MODELS.register_module()
class ReLU2FFN(FFN):
    """``Linear(C, rC) -> relu(.)^2 -> Linear(rC, C)``: point-wise, so it ignores ``hw``.

    FFN slot contract (DESIGN.md §3): built with ``embed_dims`` injected by the block; ``(B, N, C) -> (B, N, C)``.

    Args:
        embed_dims: token channels ``C``.
        ffn_ratio: hidden width ``r``.
        act_cfg: unused (the activation is what defines this FFN); accepted for the slot's shared signature.
    """

    def __init__(self, embed_dims: int, ffn_ratio: float = 4.0, act_cfg: dict | None = None) -> None:
        super().__init__()
        hidden = int(embed_dims * ffn_ratio)
        self.fc1 = nn.Linear(embed_dims, hidden)
        self.fc2 = nn.Linear(hidden, embed_dims)

    def forward(self, x: Tensor, hw: tuple[int, int] | None = None) -> Tensor:
        return self.fc2(F.relu(self.fc1(x)).square())
