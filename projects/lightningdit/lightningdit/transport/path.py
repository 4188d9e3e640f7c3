"""Probability paths between noise ``x0`` (t = 0) and data ``x1`` (t = 1)."""
from __future__ import annotations

from torch import Tensor

from transvae.registry import MODELS


def expand_t(t: Tensor, x: Tensor) -> Tensor:
    """``(B,)`` -> ``(B, 1, ..., 1)`` broadcastable against ``x``."""
    return t.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


@MODELS.register_module()
class LinearPath:
    """Rectified flow / SiT ``Linear`` path: ``x_t = t * x1 + (1 - t) * x0``; velocity ``dx_t/dt = x1 - x0``."""

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """``x0``, ``x1`` ``(B, ...)``, ``t`` ``(B,)`` -> ``x_t`` ``(B, ...)``."""
        tt = expand_t(t, x1)
        return tt * x1 + (1 - tt) * x0

    def velocity(self, x0: Tensor, x1: Tensor, t: Tensor | None = None) -> Tensor:
        """The regression target ``u_t = x1 - x0`` (independent of ``t`` on this path)."""
        return x1 - x0
