"""Frozen feature extractors for the VF loss: the common part (hidden network, always eval, not in checkpoints).

The network is stored with ``object.__setattr__`` as a plain attribute, not a registered submodule -- the same
mechanism as :class:`transvae.models.losses.LPIPS`: the parent's ``state_dict()``, ``parameters()``,
``named_modules()`` (so mmengine initialisers, optimizers, EMA averaging and DDP parameter sync) never see it; it is
rebuilt from its weight file in ``__init__``. ``.to()`` / ``.cuda()`` / ``.half()`` still move it because
:meth:`_apply` forwards to it, and :meth:`train` keeps it in ``eval()``.

A subclass whose network needs a weight file that only training uses (DINOv2) builds it **lazily**: it calls
:meth:`_set_lazy_net` in ``__init__`` (knowing ``out_channels`` without the weights) and implements
:meth:`_build_net`; the network is built and loaded by :meth:`build` (the VF loss calls it when training starts:
``model.train()``, which the Runner's training loop calls before the first step, so a missing file fails there,
within seconds) or at the first forward. A model built for inference (``init_model``, ``tools/extract_latents.py``,
``tools/test.py``) is put in ``eval()`` and never runs the VF loss, so it never needs the file. Device / dtype moves
made before the build are replayed on it.
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
        object.__setattr__(self, '_pending_applies', None)
        super().train(False)

    def _set_lazy_net(self) -> None:
        """Defer the network to :meth:`_build_net` (first ``train(True)`` or forward)."""
        object.__setattr__(self, '_net', None)
        object.__setattr__(self, '_pending_applies', [])  # _apply functions to replay on the built network
        super().train(False)

    def _build_net(self) -> nn.Module:
        """Build and load the frozen network (lazy subclasses only)."""
        raise NotImplementedError

    @property
    def is_built(self) -> bool:
        """Whether the hidden network exists (a lazy one is built at the first ``train(True)`` or forward)."""
        return self._net is not None

    @property
    def net(self) -> nn.Module:
        """The hidden frozen network (not a registered submodule); builds a lazy one."""
        if self._net is None:
            net = self._build_net()
            for fn in self._pending_applies or ():
                net._apply(fn)
            buf = next(iter(self.buffers()), None)  # a device move that bypassed _apply (FSDP moves buffers directly)
            if buf is not None and buf.device.type != 'meta':
                net.to(buf.device)
            self._set_net(net)
        return self._net

    def _apply(self, fn: Callable, recurse: bool = True) -> 'FrozenFoundationModel':  # type: ignore[override]
        super()._apply(fn, recurse)
        if self._net is not None:
            self._net._apply(fn)
        else:
            self._pending_applies.append(fn)
        return self

    def build(self) -> 'FrozenFoundationModel':
        """Build a lazy network now (no-op when built): its owner calls it when training starts, to fail early."""
        self.net  # noqa: B018  (the property builds)
        return self

    def train(self, mode: bool = True) -> 'FrozenFoundationModel':
        """Ignore ``mode``: frozen and always in ``eval()`` (does not build a lazy network)."""
        super().train(False)
        if self._net is not None:
            self._net.eval()
        return self

    def extract(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Features of images ``x`` ``(B, 3, H, W)`` in ``[-1, 1]``: ``(B, out_channels, gh, gw)`` (no grad)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'{type(self).__name__} expects (B, 3, H, W) images, got {tuple(x.shape)}')
        dtype = next(self.net.parameters()).dtype
        return self.extract(x.to(dtype)).float()

    def extra_repr(self) -> str:
        lazy = '' if self._net is not None else ', not built yet (lazy)'
        return f'{self.name!r}, out_channels={self.out_channels}, frozen, excluded from state_dict{lazy}'
