"""Frozen feature extractors for the VF loss: the common part (hidden network, always eval, not in checkpoints).

The network is stored with ``object.__setattr__`` as a plain attribute, not a registered submodule -- the same
mechanism as :class:`transvae.models.losses.LPIPS`: the parent's ``state_dict()``, ``parameters()``,
``named_modules()`` (so mmengine initialisers, optimizers, EMA averaging and DDP parameter sync) never see it; it is
rebuilt from its weight file in ``__init__``. ``.to()`` / ``.cuda()`` / ``.half()`` still move it because
:meth:`_apply` forwards to it, and :meth:`train` keeps it in ``eval()``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ['FrozenFoundationModel']


class FrozenFoundationModel(nn.Module):
    """Base class: ``forward(x: (B, 3, H, W) in [-1, 1]) -> (B, out_channels, gh, gw)`` features, no grad.

    Subclasses call :meth:`_set_net` once in ``__init__`` and implement :meth:`extract`.

    Attributes:
        out_channels: feature channels ``C_f``.
        name: a human-readable description (printed once by the VF loss).
        log_tag: short identifier used in log keys (``vf_<log_tag>``).
        is_proxy: ``True`` for an offline stand-in for the paper's DINOv2 (results are not the paper's).
    """

    out_channels: int
    name: str = 'foundation'
    log_tag: str = 'foundation'
    is_proxy: bool = False

    def _set_net(self, net: nn.Module) -> None:
        net.eval()
        net.requires_grad_(False)
        object.__setattr__(self, '_net', net)
        super().train(False)

    @property
    def net(self) -> nn.Module:
        """The hidden frozen network (not a registered submodule)."""
        return self._net

    def _apply(self, fn: Callable, recurse: bool = True) -> 'FrozenFoundationModel':  # type: ignore[override]
        super()._apply(fn, recurse)
        self._net._apply(fn)
        return self

    def train(self, mode: bool = True) -> 'FrozenFoundationModel':
        """Ignore ``mode``: frozen and always in ``eval()``."""
        super().train(False)
        self._net.eval()
        return self

    def extract(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Features of images ``x`` ``(B, 3, H, W)`` in ``[-1, 1]``: ``(B, out_channels, gh, gw)`` (no grad)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'{type(self).__name__} expects (B, 3, H, W) images, got {tuple(x.shape)}')
        dtype = next(self._net.parameters()).dtype
        return self.extract(x.to(dtype)).float()

    def extra_repr(self) -> str:
        return f'{self.name!r}, out_channels={self.out_channels}, frozen, excluded from state_dict'
