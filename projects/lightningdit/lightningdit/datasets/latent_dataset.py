"""Latents written by ``tools/extract_latents.py`` (or the official LightningDiT ``extract_features.py``) as a dataset,
read lazily shard by shard.

Only the safetensors headers and the labels are read when the dataset is built (an ImageNet-size set of latents
never sits in memory); each item is a slice of one memory-mapped shard. :class:`ShardGroupedSampler` visits the
shards one after another (shuffled order, shuffled items within each shard) so reads stay local to one file.
The shard format (file names, keys, validation) is owned by :mod:`transvae.utils.latent_shards`, the two folder
layouts (ours, the official per-rank one with ``latents_stats.pt``) by :mod:`transvae.utils.latent_folders`, which
recognises a folder's layout by its files; this file only adds the lazy per-item access.
"""
from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from mmengine.dist import get_dist_info
from safetensors import safe_open
from torch.utils.data import Dataset, Sampler

from transvae.registry import DATA_SAMPLERS, DATASETS
from transvae.utils.latent_folders import layout_of
from transvae.utils.latent_shards import LatentFileError, check_shard, read_shard

from .normalization import LatentNormalizer


@DATASETS.register_module()
class LatentShardDataset(Dataset):
    """Pre-extracted VAE latents with class labels, channel-normalised, with the stored h-flip as augmentation.

    Items: ``dict(inputs=(C, H, W) float32, data_samples=dict(label, index, flipped))``.

    ``data_root`` may hold either layout (:func:`transvae.utils.latent_folders.layout_of`): ours, or an official
    LightningDiT folder, whose item ``k`` is the official ``ImgLatentDataset``'s item ``k`` (same shards, same
    order, same normalisation; the flip drawn with ``torch`` instead of numpy).

    Args:
        data_root: folder of ``latents_XXXXX.safetensors`` shards (+ ``latents_stats.safetensors``), or of official
            ``latents_rankRR_shardSSS.safetensors`` shards (+ ``latents_stats.pt``).
        use_flip: pick the stored flipped latent with probability 0.5 (needs ``--flip`` at extraction).
        latent_norm: normalise channels by the stored statistics (LightningDiT ``latent_norm: true``).
        latent_multiplier: scale after the normalisation (1.0).
        stats_file: statistics file, relative to ``data_root`` or absolute (``None``: the layout's own file).
        num_classes: when given, every label must be in ``[0, num_classes)`` (unlabelled ``-1`` is refused).
        latent_shape: when given, the ``(C, H, W)`` every shard must have.
        max_open_files: shard handles kept open.
    """

    def __init__(self, data_root: str, use_flip: bool = True, latent_norm: bool = True,
                 latent_multiplier: float = 1.0, stats_file: str | None = None, num_classes: int | None = None,
                 latent_shape: tuple[int, int, int] | None = None, max_open_files: int = 4) -> None:
        self.data_root = data_root
        self.use_flip = use_flip
        self.layout = layout_of(data_root)
        self.shards = self.layout.list_shards(data_root)  # every shard, in item order, or an error
        self.max_open_files = max_open_files
        self._handles: OrderedDict[str, Any] = OrderedDict()
        self.starts: list[int] = []
        labels: list[torch.Tensor] = []
        shape = tuple(latent_shape) if latent_shape is not None else None
        first = 'the configured latent_shape'
        total = 0
        for path in self.shards:  # headers and labels only, through the format's one reader
            info = check_shard(path, latent_shape=shape, require_flip=use_flip, expected_from=first)
            if shape is None:
                shape, first = info.latent_shape, path  # every other shard must have the first one's shape
            lab = read_shard(path, keys=('labels',))['labels']  # int64
            self.starts.append(total)
            total += info.num_items
            labels.append(lab)
        if shape is None:
            raise FileNotFoundError(f'no latents in {data_root}')
        self.latent_shape = shape
        self.labels = torch.cat(labels)
        self._len = total
        if num_classes is not None and len(self.labels):
            lo, hi = int(self.labels.min()), int(self.labels.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(f'{data_root}: labels span [{lo}, {hi}], the model has num_classes={num_classes} '
                                 '(-1 = unlabelled images: extract from a dataset with class folders)')
        self.normalizer = LatentNormalizer.from_dir(data_root, latent_multiplier, stats_file,
                                                    num_channels=shape[0]) if latent_norm else None

    def __len__(self) -> int:
        return self._len

    @property
    def shard_ranges(self) -> list[tuple[int, int]]:
        """``[start, stop)`` dataset indices of every shard."""
        return [(s, e) for s, e in zip(self.starts, self.starts[1:] + [self._len])]

    def _handle(self, path: str) -> Any:
        h = self._handles.pop(path, None)
        if h is None:
            h = safe_open(path, framework='pt')
            while len(self._handles) >= self.max_open_files:
                self._handles.popitem(last=False)
        self._handles[path] = h
        return h

    def __getstate__(self) -> dict:  # open handles do not pickle (DataLoader workers): reopen there
        state = dict(self.__dict__)
        state['_handles'] = OrderedDict()
        return state

    def __getitem__(self, idx: int) -> dict:
        if not 0 <= idx < self._len:
            raise IndexError(f'index {idx} out of range for {self._len} latents')
        k = bisect.bisect_right(self.starts, idx) - 1
        j = idx - self.starts[k]
        flipped = bool(self.use_flip and torch.rand(()) < 0.5)
        key = 'latents_flip' if flipped else 'latents'
        z = self._handle(self.shards[k]).get_slice(key)[j:j + 1][0].float()
        if not bool(torch.isfinite(z).all()):
            raise LatentFileError(f'{self.shards[k]}: {key} of item {j} (dataset index {idx}) are not finite (NaN / '
                                  'Inf); re-extract this shard with tools/extract_latents.py')
        if self.normalizer is not None:
            z = self.normalizer.normalize(z)
        return dict(inputs=z, data_samples=dict(label=int(self.labels[idx]), index=idx, flipped=flipped))


@DATA_SAMPLERS.register_module()
class ShardGroupedSampler(Sampler):
    """Shuffle shards, then items within each shard, so a rank reads one shard after another.

    Distributed: the epoch's order is split round-robin over ranks (padded to a multiple of the world size).
    Deterministic given ``seed`` and the epoch (``set_epoch``), so mmengine's resume replays it exactly.

    Args:
        dataset: a dataset with ``shard_ranges`` (:class:`LatentShardDataset`).
        shuffle: shuffle shards and items (``False``: dataset order).
        seed: base seed (the Runner passes its seed).
        repeat: passes over the dataset per sampler epoch, each in a new order. MMEngine's ``IterBasedTrainLoop``
            sleeps 2 s at every epoch end: a small latent set (the CPU preset's 165 photos are 6 batches) repeats.
    """

    def __init__(self, dataset: LatentShardDataset, shuffle: bool = True, seed: int | None = None,
                 repeat: int = 1) -> None:
        if not hasattr(dataset, 'shard_ranges'):
            raise TypeError(f'ShardGroupedSampler needs a dataset with shard_ranges, got {type(dataset).__name__}')
        if repeat < 1:
            raise ValueError(f'repeat must be >= 1, got {repeat}')
        self.dataset, self.shuffle, self.repeat = dataset, shuffle, int(repeat)
        self.seed = 0 if seed is None else int(seed)
        self.rank, self.world_size = get_dist_info()
        self.epoch = 0
        self.num_samples = math.ceil(len(dataset) * self.repeat / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        ranges = self.dataset.shard_ranges
        indices: list[int] = []
        for _ in range(self.repeat):
            order = torch.randperm(len(ranges), generator=g).tolist() if self.shuffle else range(len(ranges))
            for k in order:
                s, e = ranges[k]
                within = (torch.randperm(e - s, generator=g) + s).tolist() if self.shuffle else list(range(s, e))
                indices.extend(within)
        total = self.num_samples * self.world_size
        indices += indices[:total - len(indices)]
        return iter(indices[self.rank:total:self.world_size])

    def __len__(self) -> int:
        return self.num_samples
