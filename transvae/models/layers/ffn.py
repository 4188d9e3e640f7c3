"""Feed-forward networks for Transformer blocks (the FFN slot).

Every FFN derives from :class:`FFN`, which states the slot's contract: ``(embed_dims, ffn_ratio, act_cfg)`` and
``forward(x: (B, N, C), hw) -> (B, N, C)``. Point-wise FFNs ignore ``hw``; convolutional FFNs fold the tokens back to
``(B, hidden, H, W)`` for their 3x3 conv.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

from torch import Tensor, nn

from transvae.registry import MODELS

from .norm import build_act


class FFN(nn.Module, metaclass=ABCMeta):
    """Base class of the FFN slot: the channel mixer of a Transformer block (DESIGN.md §3).

    Constructor: ``(embed_dims: int, ffn_ratio: float, act_cfg: dict | None, **variant_kwargs)``; the block injects
    ``embed_dims`` (``MODELS.build(ffn_cfg, default_args=dict(embed_dims=C))``), so a config names the variant and its
    own keys only. A subclass registered in ``MODELS`` is selected by ``block_cfg.ffn_cfg.type`` and checked by the
    slot's contract test wherever it is defined.
    """

    @abstractmethod
    def forward(self, x: Tensor, hw: tuple[int, int] | None = None) -> Tensor:
        """``x`` ``(B, N, C)`` on an ``hw = (H, W)`` token grid (``N = H * W``) -> ``(B, N, C)``.

        Point-wise FFNs ignore ``hw``; spatial ones need it to fold the tokens back into a map.
        """


@MODELS.register_module()
class PointwiseFFN(FFN):
    """The ViT MLP: ``Linear(C, rC) -> act -> Linear(rC, C)`` (ratio 4 in the baselines)."""

    def __init__(self, embed_dims: int, ffn_ratio: float = 4.0, act_cfg: dict | None = None) -> None:
        super().__init__()
        hidden = int(embed_dims * ffn_ratio)
        self.fc1 = nn.Linear(embed_dims, hidden)
        self.act = build_act(act_cfg or dict(type='GELU'))
        self.fc2 = nn.Linear(hidden, embed_dims)

    def forward(self, x: Tensor, hw: tuple[int, int] | None = None) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _ConvFFN(FFN):
    """Inverted bottleneck with a residual 3x3 conv in the hidden space (Fig. 2e):

    ``u = Linear_up(x); u = u + Conv3x3(u); y = Linear_down(act(u))``.
    Subclasses choose the conv (dense or depthwise).
    """

    def __init__(self, embed_dims: int, ffn_ratio: float, act_cfg: dict | None, groups_per_hidden: bool) -> None:
        super().__init__()
        hidden = int(embed_dims * ffn_ratio)
        self.fc1 = nn.Linear(embed_dims, hidden)
        self.conv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden if groups_per_hidden else 1)
        self.act = build_act(act_cfg or dict(type='GELU'))
        self.fc2 = nn.Linear(hidden, embed_dims)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        b, n, _ = x.shape
        h, w = hw
        u = self.fc1(x)  # (B, N, hidden)
        # (B, hidden, H, W) as a channels-last view of the tokens. ``u.transpose(1, 2).reshape(...)`` is the same
        # view, but at B = 1 its batch stride is ``hidden``, not ``N * hidden``, so the convolution does not see
        # channels-last strides: it copied the map to NCHW and ran the slower NCHW kernel
        m = u.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        u = u + self.conv(m).flatten(2).transpose(1, 2)
        return self.fc2(self.act(u))


@MODELS.register_module()
class FullConvFFN(_ConvFFN):
    """Dense 3x3 conv in the hidden space, ratio 1 (TransVAE's final choice; about 11 C^2 parameters)."""

    def __init__(self, embed_dims: int, ffn_ratio: float = 1.0, act_cfg: dict | None = None) -> None:
        super().__init__(embed_dims, ffn_ratio, act_cfg, groups_per_hidden=False)


@MODELS.register_module()
class DWConvFFN(_ConvFFN):
    """Depthwise 3x3 conv in the hidden space, ratio 4 (DHVT-inspired variant)."""

    def __init__(self, embed_dims: int, ffn_ratio: float = 4.0, act_cfg: dict | None = None) -> None:
        super().__init__(embed_dims, ffn_ratio, act_cfg, groups_per_hidden=True)


@MODELS.register_module()
class SwiGLUFFN(FFN):
    """Gated point-wise FFN (LightningDiT / LLaMA): ``y = W3(act(x W1) * (x W2))``, ``W1`` and ``W2`` fused.

    The hidden width is ``int(2/3 * int(embed_dims * ffn_ratio))`` so the three matrices hold about as many
    parameters as a ratio-``ffn_ratio`` MLP (LightningDiT: ratio 4, hidden 2048 for C = 768, 3072 for C = 1152).

    Args:
        embed_dims: token channels ``C``.
        ffn_ratio: the ratio of the ungated MLP whose size this matches.
        act_cfg: the gate activation (``SiLU`` by default).
        bias: biases of the projections.
    """

    def __init__(self, embed_dims: int, ffn_ratio: float = 4.0, act_cfg: dict | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        self.hidden = int(2 / 3 * int(embed_dims * ffn_ratio))
        self.w12 = nn.Linear(embed_dims, 2 * self.hidden, bias=bias)
        self.act = build_act(act_cfg or dict(type='SiLU'))
        self.w3 = nn.Linear(self.hidden, embed_dims, bias=bias)

    def forward(self, x: Tensor, hw: tuple[int, int] | None = None) -> Tensor:
        """``(B, N, C) -> (B, N, C)``; ``hw`` is ignored."""
        gate, value = self.w12(x).chunk(2, dim=-1)  # each (B, N, hidden)
        return self.w3(self.act(gate) * value)


__all__ = ['FFN', 'PointwiseFFN', 'FullConvFFN', 'DWConvFFN', 'SwiGLUFFN']
