"""Conditioning embeddings of LightningDiT: the diffusion time and the class label (with a null class for CFG)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of a continuous time ``t`` followed by a two-layer SiLU MLP (DiT / SiT).

    Args:
        embed_dims: output width ``D``.
        freq_dims: number of sinusoidal features (half cosines, half sines).
        max_period: the lowest frequency is ``1 / max_period``.
    """

    def __init__(self, embed_dims: int, freq_dims: int = 256, max_period: float = 10000.0) -> None:
        super().__init__()
        self.freq_dims = freq_dims
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dims, embed_dims), nn.SiLU(), nn.Linear(embed_dims, embed_dims))

    def sinusoidal(self, t: Tensor) -> Tensor:
        """``t`` ``(B,)`` (any real values) -> ``(B, freq_dims)`` float32 ``[cos(t w_k), sin(t w_k)]``."""
        half = self.freq_dims // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.freq_dims % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t: Tensor) -> Tensor:
        """``(B,)`` -> ``(B, D)``."""
        return self.mlp(self.sinusoidal(t).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class embedding table with one extra row, the null class ``num_classes``, used for classifier-free guidance.

    During training each label is replaced by the null class with probability ``dropout_prob``.

    Args:
        num_classes: number of real classes ``K``; the null class is index ``K``.
        embed_dims: output width ``D``.
        dropout_prob: label dropout rate during training (0.1 in LightningDiT; 0 removes the null row).
    """

    def __init__(self, num_classes: int, embed_dims: int, dropout_prob: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= dropout_prob < 1.0:
            raise ValueError(f'dropout_prob must be in [0, 1), got {dropout_prob}')
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.table = nn.Embedding(num_classes + int(dropout_prob > 0), embed_dims)

    @property
    def null_class(self) -> int:
        return self.num_classes

    def drop_labels(self, labels: Tensor, force_drop: Tensor | None = None) -> Tensor:
        """Replace labels by the null class: where ``force_drop`` is true, or at random with ``dropout_prob``."""
        if force_drop is None:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
        else:
            drop = force_drop.to(device=labels.device, dtype=torch.bool)
        return torch.where(drop, torch.full_like(labels, self.null_class), labels)

    def forward(self, labels: Tensor, train: bool, force_drop: Tensor | None = None) -> Tensor:
        """``labels`` ``(B,)`` int64 in ``[0, K]`` (``K`` = null) -> ``(B, D)``."""
        if labels.numel() and (labels.min() < 0 or labels.max() > self.num_classes):
            raise ValueError(f'class labels must be in [0, {self.num_classes}] ({self.num_classes} = null class), '
                             f'got range [{int(labels.min())}, {int(labels.max())}]')
        if force_drop is not None or (train and self.dropout_prob > 0):
            labels = self.drop_labels(labels, force_drop)
        if self.table.num_embeddings == self.num_classes and (labels == self.null_class).any():
            raise ValueError('the null class needs dropout_prob > 0 (the table has no null row)')
        return self.table(labels)
