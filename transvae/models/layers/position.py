"""Position encodings for token stages.

Every encoding shares one interface so a config swaps them with one key, and a new encoding is one new class:

* ``embed_tokens(x, hw)`` adds an absolute encoding to the tokens ``(B, N, C)`` (identity for rotary / none);
* ``qk_transform(hw)`` returns what every attention layer applies to its per-head queries and keys: a callable
  ``(q, k) -> (q, k)`` on ``(B, heads, N, head_dim)`` tensors, or ``None``. A stage computes it once per forward for
  its actual grid and hands it to every block; attention layers know nothing of the encoding behind it (RoPE is one
  such transform, :class:`RotaryQK`);
* ``get_embed(hw)`` is the precomputed tensor behind the transform (RoPE: the complex rotations), for code that
  inspects it.

Grids are **integer** positions ``0..H-1, 0..W-1``: nothing is rescaled to the training grid, so larger inputs truly
extrapolate.
"""
from __future__ import annotations

from typing import Callable


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS


QKTransform = Callable[[Tensor, Tensor], 'tuple[Tensor, Tensor]']
"""``(q, k) -> (q, k)`` on per-head ``(B, heads, N, head_dim)`` tensors: what attention applies before SDPA."""


class PositionEncoding(nn.Module):
    """Base class: no absolute embedding and nothing applied to queries / keys."""

    def embed_tokens(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """Return ``x`` ``(B, N, C)`` with an absolute position embedding added (identity here)."""
        return x

    def qk_transform(self, hw: tuple[int, int]) -> QKTransform | None:
        """The transform attention applies to ``q`` / ``k`` on a ``hw`` grid (``None``: none)."""
        return None

    def get_embed(self, hw: tuple[int, int]) -> Tensor | None:
        """The tensor behind :meth:`qk_transform` for a ``hw`` grid (RoPE: rotations), or ``None``."""
        return None


class RotaryQK:
    """:data:`QKTransform` that rotates ``q`` and ``k`` by precomputed complex rotations ``rope`` ``(N, hd / 2)``."""

    def __init__(self, rope: Tensor) -> None:
        self.rope = rope

    def __call__(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return apply_rope(q, self.rope), apply_rope(k, self.rope)


@MODELS.register_module()
class NoPE(PositionEncoding):
    """No position information at all (the "w/o PE" ablation)."""

    def __init__(self, head_dim: int | None = None, embed_dims: int | None = None) -> None:
        super().__init__()


@MODELS.register_module()
class RoPE2D(PositionEncoding):
    """2D axial rotary position embedding (EVA-02 style, interleaved pairs).

    The first half of each head's channels rotates with the row index, the second half with the column index;
    each half uses ``head_dim / 4`` frequencies ``theta ** (-4k / head_dim)``, each repeated for the two channels of
    a rotated pair.

    Args:
        head_dim: channels per attention head (divisible by 4).
        theta: frequency base.
    """

    def __init__(self, head_dim: int = 64, theta: float = 10000.0, embed_dims: int | None = None) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f'RoPE2D needs head_dim divisible by 4, got {head_dim}')
        self.head_dim = head_dim
        k = torch.arange(head_dim // 4, dtype=torch.float64)
        freqs = theta ** (-4.0 * k / head_dim)
        self.register_buffer('freqs', freqs.float(), persistent=False)

    def get_angles(self, hw: tuple[int, int]) -> Tensor:
        """Rotation angle of every channel pair: ``(N, head_dim / 2)`` (rows' pairs first, then columns')."""
        h, w = hw
        device = self.freqs.device
        ang_y = torch.outer(torch.arange(h, device=device, dtype=torch.float32), self.freqs)  # (H, hd/4)
        ang_x = torch.outer(torch.arange(w, device=device, dtype=torch.float32), self.freqs)  # (W, hd/4)
        ang = torch.cat([ang_y[:, None, :].expand(h, w, -1), ang_x[None, :, :].expand(h, w, -1)], dim=-1)
        return ang.reshape(h * w, self.head_dim // 2)

    def get_embed(self, hw: tuple[int, int]) -> Tensor:
        """Unit complex rotations ``exp(i * angle)``: complex64 ``(N, head_dim / 2)``, one per channel pair."""
        ang = self.get_angles(hw)
        return torch.polar(torch.ones_like(ang), ang)

    def qk_transform(self, hw: tuple[int, int]) -> RotaryQK:
        """Rotate every head's ``q`` / ``k`` channel pairs by their row / column angles on a ``hw`` grid."""
        return RotaryQK(self.get_embed(hw))


def apply_rope(x: Tensor, rope: Tensor) -> Tensor:
    """Rotate each interleaved channel pair ``(2i, 2i+1)`` of ``x`` ``(B, heads, N, hd)`` by ``rope`` ``(N, hd/2)``.

    A pair ``(a, b)`` is the complex number ``a + ib`` multiplied by ``exp(i * angle)``: ``(a cos - b sin,
    a sin + b cos)``, one complex product instead of separate cos / sin / rotate-half tensors. Computed in float32,
    returned in ``x``'s dtype.
    """
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (B, heads, N, hd/2)
    return torch.view_as_real(xc * rope).flatten(-2).to(x.dtype)


@MODELS.register_module()
class LearnableAPE(PositionEncoding):
    """Learnable absolute position embedding on a fixed training grid (ViT-VAE baseline).

    For other grids it is bicubically interpolated, the source of the grid artefacts of the paper's Fig. 3a.

    Args:
        embed_dims: token channels.
        grid_size: the training grid (``img_size / patch``).
    """

    def __init__(self, embed_dims: int, grid_size: int | tuple[int, int] = 16, head_dim: int | None = None) -> None:
        super().__init__()
        gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
        self.grid = (gh, gw)
        self.pos_embed = nn.Parameter(torch.zeros(1, gh * gw, embed_dims))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def embed_tokens(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        pe = self.pos_embed
        if tuple(hw) != self.grid:
            pe = pe.reshape(1, *self.grid, -1).permute(0, 3, 1, 2)
            pe = F.interpolate(pe, size=tuple(hw), mode='bicubic', align_corners=False)
            pe = pe.flatten(2).transpose(1, 2)
        return x + pe.to(x.dtype)


@MODELS.register_module()
class SinCosAPE(PositionEncoding):
    """Fixed 2D sin-cos absolute embedding from integer positions (no parameters, any grid)."""

    def __init__(self, embed_dims: int, theta: float = 10000.0, head_dim: int | None = None) -> None:
        super().__init__()
        if embed_dims % 4:
            raise ValueError(f'SinCosAPE needs embed_dims divisible by 4, got {embed_dims}')
        self.embed_dims = embed_dims
        self.theta = theta

    def embed_tokens(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        h, w = hw
        q = self.embed_dims // 4
        omega = 1.0 / self.theta ** (torch.arange(q, device=x.device, dtype=torch.float32) / q)
        ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=torch.float32),
                                torch.arange(w, device=x.device, dtype=torch.float32), indexing='ij')
        oy, ox = ys.reshape(-1, 1) * omega, xs.reshape(-1, 1) * omega
        pe = torch.cat([oy.sin(), oy.cos(), ox.sin(), ox.cos()], dim=1)
        return x + pe.to(x.dtype)


def build_position_encoding(cfg: dict | None, head_dim: int, embed_dims: int) -> PositionEncoding:
    """Build a registered position encoding, injecting ``head_dim`` and ``embed_dims``."""
    if cfg is None:
        return NoPE()
    return MODELS.build(cfg, default_args=dict(head_dim=head_dim, embed_dims=embed_dims))


__all__ = ['PositionEncoding', 'QKTransform', 'RotaryQK', 'NoPE', 'RoPE2D', 'LearnableAPE', 'SinCosAPE', 'apply_rope',
           'build_position_encoding']
