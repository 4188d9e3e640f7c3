"""Feed-forward networks for Transformer blocks (the FFN slot).

All share ``(embed_dims, ffn_ratio, act_cfg)`` and ``forward(x: (B, N, C), hw) -> (B, N, C)``. Point-wise FFNs
ignore ``hw``; convolutional FFNs fold the tokens back to ``(B, hidden, H, W)`` for their 3x3 conv.
"""
from __future__ import annotations

from torch import Tensor, nn

from transvae.registry import MODELS

from .norm import build_act


@MODELS.register_module()
class PointwiseFFN(nn.Module):
    """The ViT MLP: ``Linear(C, rC) -> act -> Linear(rC, C)`` (ratio 4 in the baselines)."""

    def __init__(self, embed_dims: int, ffn_ratio: float = 4.0, act_cfg: dict | None = None) -> None:
        super().__init__()
        hidden = int(embed_dims * ffn_ratio)
        self.fc1 = nn.Linear(embed_dims, hidden)
        self.act = build_act(act_cfg or dict(type='GELU'))
        self.fc2 = nn.Linear(hidden, embed_dims)

    def forward(self, x: Tensor, hw: tuple[int, int] | None = None) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _ConvFFN(nn.Module):
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
        m = u.transpose(1, 2).reshape(b, -1, h, w)  # (B, hidden, H, W)
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
