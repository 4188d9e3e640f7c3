"""The fixed 2-D sin-cos position table in the channel order of the reference LightningDiT (column half first)."""
from __future__ import annotations

import torch
from torch import Tensor

from transvae.models.layers.position import PositionEncoding
from transvae.registry import MODELS


def column_first_sincos_table(embed_dims: int, hw: tuple[int, int], theta: float = 10000.0) -> Tensor:
    """``(h*w, D)`` float64 table ``[sin(x w), cos(x w), sin(y w), cos(y w)]``, ``w_k = theta^(-k / (D/4))``.

    Token ``n = y * w + x`` (row-major, ``y`` the row, ``x`` the column). The core ``SinCosAPE`` holds the same four
    blocks with the row half first (``[sin(y w), cos(y w), sin(x w), cos(x w)]``); hustvl/LightningDiT's
    ``get_2d_sincos_pos_embed`` builds its grid with ``np.meshgrid(grid_w, grid_h)``, so its first half encodes
    the column. Computed in float64 as the reference does (it stores the result as float32).
    """
    if embed_dims % 4:
        raise ValueError(f'the sin-cos table needs embed_dims divisible by 4, got {embed_dims}')
    h, w = hw
    q = embed_dims // 4
    omega = 1.0 / theta ** (torch.arange(q, dtype=torch.float64) / q)  # (D/4,)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing='ij')
    ox, oy = xs.reshape(-1, 1) * omega, ys.reshape(-1, 1) * omega  # (N, D/4) each
    return torch.cat([ox.sin(), ox.cos(), oy.sin(), oy.cos()], dim=1)


@MODELS.register_module()
class ColumnFirstSinCosAPE(PositionEncoding):
    """Fixed 2-D sin-cos absolute embedding, column half first: the frozen ``pos_embed`` of the reference
    LightningDiT (:func:`column_first_sincos_table`), so a converted official checkpoint gives the official outputs.

    No parameters, any grid (the reference stores the table of its training grid as a frozen parameter; the
    converter checks that table against this one). Models trained here keep the core ``SinCosAPE`` (row first):
    for training from scratch the two orders are equivalent, for official weights they are not.

    Args:
        embed_dims: token channels ``D`` (divisible by 4).
        theta: frequency base (10000 in the reference).
        head_dim: unused (the position-encoding slot passes it to every encoding).
    """

    def __init__(self, embed_dims: int, theta: float = 10000.0, head_dim: int | None = None) -> None:
        super().__init__()
        if embed_dims % 4:
            raise ValueError(f'ColumnFirstSinCosAPE needs embed_dims divisible by 4, got {embed_dims}')
        self.embed_dims = embed_dims
        self.theta = theta
        self._tables: dict[tuple, Tensor] = {}  # (hw, device, dtype) -> table: one float64 computation per grid

    def table(self, hw: tuple[int, int]) -> Tensor:
        """The ``(h*w, D)`` float32 table added to the tokens of a ``hw`` grid."""
        return column_first_sincos_table(self.embed_dims, hw, self.theta).float()

    def embed_tokens(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``x`` ``(B, h*w, D)`` plus the table (computed once per grid, device and dtype)."""
        key = (tuple(hw), x.device, x.dtype)
        if key not in self._tables:
            self._tables[key] = self.table(hw).to(device=x.device, dtype=x.dtype)
        return x + self._tables[key]
