"""A training sampler that makes every class equally likely (for small, unbalanced latent sets)."""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from mmengine.dist import get_dist_info
from torch.utils.data import Dataset, Sampler

from transvae.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(Sampler):
    """Draw items with replacement, item ``i`` with probability proportional to ``1 / count(label_i)``: every class
    present is drawn equally often, the items of a class uniformly.

    A class-conditional model learns the same ``p(x | y)``; only the label frequencies change, to the uniform ones of
    the class-balanced evaluation. Meant for small unbalanced sets (the CPU preset's 21 photo sources hold 1 to 125
    images each); ImageNet is balanced already and reads better with :class:`ShardGroupedSampler`'s locality.

    Distributed: each epoch's draw is split round-robin over ranks; deterministic given ``seed`` and the epoch
    (``set_epoch``), so mmengine's resume replays it exactly.

    Args:
        dataset: a dataset with a ``labels`` ``(N,)`` tensor (:class:`LatentShardDataset`).
        num_samples: draws per epoch over all ranks (default: ``len(dataset)``). MMEngine's ``IterBasedTrainLoop``
            sleeps 2 s at every epoch end, so a small set draws several passes per epoch.
        seed: base seed (the Runner passes its seed).
    """

    def __init__(self, dataset: Dataset, num_samples: int | None = None, seed: int | None = None) -> None:
        labels = getattr(dataset, 'labels', None)
        if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or len(labels) != len(dataset):
            raise TypeError(f'ClassBalancedSampler needs a dataset with a (N,) `labels` tensor, got '
                            f'{type(dataset).__name__}')
        if (labels < 0).any():
            raise ValueError('ClassBalancedSampler needs every item labelled (labels >= 0)')
        counts = torch.bincount(labels)
        self.weights = 1.0 / counts[labels].double()
        self.seed = 0 if seed is None else int(seed)
        self.rank, self.world_size = get_dist_info()
        self.epoch = 0
        total = len(dataset) if num_samples is None else int(num_samples)
        if total < 1:
            raise ValueError(f'num_samples must be >= 1, got {total}')
        self.num_samples = math.ceil(total / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        draw = torch.multinomial(self.weights, self.num_samples * self.world_size, replacement=True, generator=g)
        return iter(draw[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples
