"""Stages: a sequence of blocks at one resolution, on ``(B, C, H, W)`` maps in and out."""
from __future__ import annotations

import copy

import torch
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from transvae.registry import MODELS

from ..layers.position import build_position_encoding
from ..layers.window_attention import window_and_shift


class ConvStage(nn.Module):
    """``depth`` convolutional blocks (``ResBlock`` by default) on a ``(B, C, H, W)`` map."""

    def __init__(self, channels: int, depth: int, block_cfg: dict, with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            MODELS.build(copy.deepcopy(block_cfg), default_args=dict(in_channels=channels)) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = cp.checkpoint(blk, x, use_reentrant=False) if self.with_cp and x.requires_grad else blk(x)
        return x


class TransformerStage(nn.Module):
    """``depth`` token blocks with one position encoding computed once per forward for the actual grid.

    The one stage builder of every Transformer backbone (TransVAE, ViT, Swin). Input and output are maps
    ``(B, C, H, W)`` in the input's memory format; inside, tokens ``(B, H*W, C)``, which are exactly a channels-last
    map's memory, so a channels-last input and output are views (no copy), and an NCHW one costs one copy each way. With ``window_size`` the blocks are window blocks
    (``SwinBlock``): each receives ``window_size`` and ``shift`` (odd blocks shift), and the position encoding's q / k
    transform is evaluated on the window-local grid.

    Args:
        channels: token channels ``C``.
        depth: number of blocks.
        block_cfg: registered block (``embed_dims`` and ``head_dim`` injected).
        pe_cfg: registered position encoding (``None``: none).
        head_dim: attention head dim.
        with_cp: gradient checkpointing of every block (training only).
        window_size: window ``W`` of window blocks; ``None`` for global attention blocks.
    """

    def __init__(self, channels: int, depth: int, block_cfg: dict, pe_cfg: dict | None, head_dim: int,
                 with_cp: bool = False, window_size: int | None = None) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.window_size = window_size
        self.pe = build_position_encoding(pe_cfg, head_dim=head_dim, embed_dims=channels)
        self.blocks = nn.ModuleList(
            MODELS.build(copy.deepcopy(block_cfg), default_args=self._block_args(i, channels, head_dim))
            for i in range(depth))

    def _block_args(self, i: int, channels: int, head_dim: int) -> dict:
        args = dict(embed_dims=channels, head_dim=head_dim)
        if self.window_size is not None:
            args.update(window_size=self.window_size, shift=i % 2 == 1)
        return args

    def pe_grid(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Grid on which the q / k transform is evaluated: the token grid, or the (unshifted) window."""
        return hw if self.window_size is None else window_and_shift(hw, self.window_size, False)[0]

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        hw = (h, w)
        # token-major (B, N, C): a view of a channels-last map, one copy of an NCHW one (a strided view would make
        # every LayerNorm / Linear copy it again)
        t = self.pe.embed_tokens(x.permute(0, 2, 3, 1).reshape(b, h * w, c), hw)
        pos = self.pe.qk_transform(self.pe_grid(hw))  # once per stage: what attention applies to q / k
        for blk in self.blocks:
            if self.with_cp and t.requires_grad:
                t = cp.checkpoint(blk, t, hw, pos, use_reentrant=False)
            else:
                t = blk(t, hw, pos)
        out = t.reshape(b, h, w, c).permute(0, 3, 1, 2)  # a channels-last view
        # an NCHW input gets a contiguous NCHW output: the next GroupNorm would otherwise run its channels-last
        # kernels on a model that chose NCHW
        return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()
