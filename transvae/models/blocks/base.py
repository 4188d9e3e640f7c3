"""The block slot's base classes: what a stage may build and what the engine may read off a block.

A block is the repeated unit of a stage (:class:`~transvae.models.blocks.stages.ConvStage` /
:class:`~transvae.models.blocks.stages.TransformerStage`). Two kinds, one base each, so a stage, a contract test or
a user's variant finds the kind by type rather than by name:

* :class:`TokenBlock`: ``(embed_dims, head_dim, ...)``; ``forward(x: (B, N, C), hw, pos) -> (B, N, C)``. Window
  blocks (Swin) also take ``window_size`` and ``shift``, which ``TransformerStage(window_size=...)`` injects.
* :class:`ConvBlock`: ``(in_channels, ...)``; ``forward(x: (B, C, H, W)) -> (B, C', H, W)``.

Capabilities are class attributes: :attr:`Block.fsdp_unit` says the block is one FSDP unit (the engine's wrap policy
reads it; the engine imports nothing from ``transvae.models``).
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar

from torch import Tensor, nn

from ..layers.position import QKTransform

__all__ = ['Block', 'TokenBlock', 'ConvBlock']


class Block(nn.Module, metaclass=ABCMeta):
    """Base class of every block (DESIGN.md §3); see :class:`TokenBlock` and :class:`ConvBlock` for the contracts."""

    fsdp_unit: ClassVar[bool] = True
    """Each instance becomes one FSDP unit under ``transvae_block_wrap_policy`` (only one block's full parameters are
    gathered at a time). A subclass that should be sharded with its parent instead sets it to ``False``."""


class TokenBlock(Block):
    """A block on tokens: ``x + Attn(Norm(x), hw, pos)`` then ``x + FFN(Norm(x), hw)`` in the paper's blocks.

    Constructor: ``(embed_dims: int, head_dim: int, **variant_kwargs)``, both injected by ``TransformerStage``
    (window blocks: also ``window_size`` and ``shift``).
    """

    @abstractmethod
    def forward(self, x: Tensor, hw: tuple[int, int], pos: QKTransform | None = None) -> Tensor:
        """``x`` ``(B, N, C)`` with ``N = H * W`` for ``hw = (H, W)`` -> ``(B, N, C)``; ``pos`` is the stage's
        ``PositionEncoding.qk_transform`` (on the token grid, or on the window for window blocks) or ``None``."""


class ConvBlock(Block):
    """A block on maps. Constructor: ``(in_channels: int, **variant_kwargs)``, injected by ``ConvStage``."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W) -> (B, C_out, H, W)`` (``C_out = C_in`` inside a stage)."""
