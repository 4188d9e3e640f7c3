"""A new position encoding: RoPE-Mixed (Heo et al., ECCV 2024) -- learnable 2D frequencies, one file.

Axial RoPE rotates each channel pair by *either* the row or the column index; RoPE-Mixed rotates pair ``j`` by
``row * f_y[j] + col * f_x[j]`` with learnable ``f_x, f_y`` (so pairs can follow diagonal directions). It is neither
an additive embedding nor axial RoPE, and needs no edit of any attention layer: it hands attention a q / k transform
through the position-encoding interface (``qk_transform``), reusing transvae's ``RotaryQK``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from transvae.models.layers.position import PositionEncoding, RotaryQK
from transvae.registry import MODELS


@MODELS.register_module()
class MixedRoPE2D(PositionEncoding):
    """Rotary encoding with learnable mixed row / column frequencies, shared by all heads.

    Initialised to axial RoPE's frequencies on alternating axes (pair ``j`` starts on rows for even ``j``, on
    columns for odd ``j``), so training starts from a working encoding. Integer grid positions, no rescaling:
    larger grids extrapolate as RoPE does.

    Args:
        head_dim: channels per attention head (even).
        theta: frequency base of the initialisation.
        embed_dims: unused (accepted for the slot's shared signature).
    """

    def __init__(self, head_dim: int = 64, theta: float = 10000.0, embed_dims: int | None = None) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f'MixedRoPE2D needs an even head_dim, got {head_dim}')
        pairs = head_dim // 2
        base = theta ** (-2.0 * torch.arange(pairs, dtype=torch.float32) / head_dim)  # (hd/2,)
        on_rows = torch.arange(pairs) % 2 == 0
        self.freqs = nn.Parameter(torch.stack([base * on_rows, base * ~on_rows]))  # (2, hd/2): rows, cols

    def get_angles(self, hw: tuple[int, int]) -> Tensor:
        """Angle of every channel pair at every grid position: ``(H * W, head_dim / 2)``."""
        h, w = hw
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=self.freqs.device),
                                torch.arange(w, dtype=torch.float32, device=self.freqs.device), indexing='ij')
        pos = torch.stack([ys.flatten(), xs.flatten()], dim=1)  # (N, 2)
        return pos @ self.freqs  # (N, hd/2)

    def get_embed(self, hw: tuple[int, int]) -> Tensor:
        ang = self.get_angles(hw)
        return torch.polar(torch.ones_like(ang), ang)  # complex64 (N, hd/2)

    def qk_transform(self, hw: tuple[int, int]) -> RotaryQK:
        return RotaryQK(self.get_embed(hw))
