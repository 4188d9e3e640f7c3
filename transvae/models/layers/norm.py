"""Normalisation and activation layers, registered by the names configs use (``LN``, ``RMSNorm``, ``GN``, ...).

Every norm derives from :class:`Norm`, which states the slot's contract: token norms (``LN``, ``RMSNorm``,
``channel_dim = -1``) normalise the last dimension of ``(..., C)`` tensors; map norms (``GN``, ``LN2d``,
``RMSNorm2d``, ``channel_dim = 1``) normalise the channel dimension of ``(B, C, H, W)`` tensors. All take the number
of features as ``num_features`` so parents can inject it with ``MODELS.build(cfg, default_args=...)``. Activations
are torch's own classes, registered by name.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS


def gn_groups(channels: int, max_groups: int = 32) -> int:
    """The largest group count ``<= max_groups`` dividing ``channels`` (32 for every paper width)."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class Norm(nn.Module, metaclass=ABCMeta):
    """Base class of the norm slot (DESIGN.md §3).

    Constructor: ``(num_features: int, eps: float, affine: bool, **variant_kwargs)``; parents inject
    ``num_features`` (:func:`build_norm`). Forward: a tensor to one of the same shape, normalised over (or within
    groups of) dimension :attr:`channel_dim`, which holds ``num_features`` channels. A subclass of a torch norm lists
    the torch class first, so that class's ``forward`` is the one that runs.
    """

    channel_dim: ClassVar[int] = -1
    """The dimension holding the channels: ``-1`` for tokens ``(..., C)``, ``1`` for maps ``(B, C, H, W)``."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``x`` with ``num_features`` channels in dimension :attr:`channel_dim` -> the same shape."""


@MODELS.register_module('LN')
class LayerNorm(nn.LayerNorm, Norm):
    """LayerNorm over the last dimension. Input ``(..., C)``."""

    def __init__(self, num_features: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__(num_features, eps=eps, elementwise_affine=affine)


@MODELS.register_module('RMSNorm')
class RMSNorm(Norm):
    """Root-mean-square norm over the last dimension (no mean subtraction, no bias). Input ``(..., C)``."""

    def __init__(self, num_features: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        if x.device.type == 'cpu' and x.dtype == torch.float32 and not torch.is_autocast_enabled('cpu'):
            # torch's CPU rms_norm is this composite plus a final ``.contiguous()``: the same ops without that copy
            # (bit for bit the same values and gradients) keep the layout of ``x``, so per-head Q / K views of the
            # QKV projection stay token-major and attention's output needs no copy either
            y = x.mul(torch.rsqrt(x.pow(2).mean(-1, keepdim=True).add(self.eps)))
            return y if w is None else y.mul(w)
        if w is not None and w.dtype != x.dtype:  # under autocast Q / K arrive in bf16 / fp16: keep the fused kernel
            w = w.to(x.dtype)  # (it accumulates in fp32); a dtype mismatch falls back to a slow unfused path
        return F.rms_norm(x, (x.shape[-1],), w, self.eps)


@MODELS.register_module('GN')
class GroupNorm(nn.GroupNorm, Norm):
    """GroupNorm for ``(B, C, H, W)`` maps with ``num_groups`` shrunk to divide ``num_features``.

    Args:
        num_features: channels ``C``.
        num_groups: the most groups to use (the largest divisor of ``C`` not above it is taken).
        min_group_channels: the fewest channels a group may hold; caps the groups at ``C // min_group_channels``.
            The default 1 allows one channel per group, which is InstanceNorm: a narrow map normalised by GN(32)
            (e.g. a 32-channel full-resolution stage of a decoder head) loses its per-image contrast and colour.
        eps / affine: as for :class:`torch.nn.GroupNorm`.
    """

    channel_dim: ClassVar[int] = 1

    def __init__(self, num_features: int, num_groups: int = 32, eps: float = 1e-6, affine: bool = True,
                 min_group_channels: int = 1) -> None:
        if min_group_channels < 1:
            raise ValueError(f'GN: min_group_channels must be >= 1, got {min_group_channels}')
        max_groups = min(num_groups, max(1, num_features // min_group_channels))
        super().__init__(gn_groups(num_features, max_groups), num_features, eps=eps, affine=affine)


@MODELS.register_module('LN2d')
class LayerNorm2d(LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map."""

    channel_dim: ClassVar[int] = 1

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@MODELS.register_module('RMSNorm2d')
class RMSNorm2d(RMSNorm):
    """RMSNorm over the channels of a ``(B, C, H, W)`` map (DC-AE's ``trms2d``)."""

    channel_dim: ClassVar[int] = 1

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


for _name, _cls in (('GELU', nn.GELU), ('SiLU', nn.SiLU), ('ReLU', nn.ReLU), ('Identity', nn.Identity)):
    MODELS.register_module(_name, module=_cls)


def build_norm(cfg: dict | None, num_features: int) -> nn.Module:
    """Build a registered norm for ``num_features`` channels; ``None`` gives ``nn.Identity``."""
    if cfg is None:
        return nn.Identity()
    return MODELS.build(cfg, default_args=dict(num_features=num_features))


def build_act(cfg: dict | None) -> nn.Module:
    """Build a registered activation; ``None`` gives ``nn.Identity``."""
    if cfg is None:
        return nn.Identity()
    return MODELS.build(cfg)


__all__ = ['Norm', 'LayerNorm', 'RMSNorm', 'GroupNorm', 'LayerNorm2d', 'RMSNorm2d', 'build_norm', 'build_act',
           'gn_groups']
