"""The test set of a generation-FID evaluation: N class-balanced (label, noise) pairs, one per image to generate."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from transvae.registry import DATASETS

from ..models.flow_model import seeded_noise


def class_balanced_labels(num_samples: int, classes: int | Sequence[int]) -> torch.Tensor:
    """``(N,)`` labels: sample ``i`` gets ``classes[i % K]`` (``classes`` an int K: ``i % K``), so every class gets
    ``N // K`` or ``N // K + 1`` samples (10,000 over 1,000 classes: exactly 10 each)."""
    ids = torch.arange(classes) if isinstance(classes, int) else torch.as_tensor(list(classes), dtype=torch.int64)
    if num_samples < 1 or ids.numel() < 1:
        raise ValueError(f'need num_samples >= 1 and at least one class, got {num_samples}, {ids.numel()} classes')
    return ids[torch.arange(num_samples) % ids.numel()]


@DATASETS.register_module()
class ClassBalancedNoiseDataset(Dataset):
    """Item ``i``: ``dict(inputs=x0, data_samples=dict(label, seed, index))`` with ``x0`` ``(C, h, w)`` the standard
    normal noise of seed ``seed + i`` and the class-balanced label of :func:`class_balanced_labels`.

    The model's ``predict`` step integrates ``x0`` to a latent; with the default ``DefaultSampler(shuffle=False)``
    the indices are split over ranks and sample ``i`` is the same image on any number of ranks and in any batch.

    Args:
        num_samples: N (10,000 for FID-10K).
        latent_shape: ``(C, h, w)`` of the DiT's latents.
        num_classes: K, when the classes are ``0 .. K-1``.
        classes_from: a latent folder of ``tools/extract_latents.py``: balance over the labels present in it
            instead (a small set whose label space has unused slots).
        seed: noise seed of sample 0.
    """

    def __init__(self, num_samples: int, latent_shape: Sequence[int], num_classes: int = 1000,
                 classes_from: str | None = None, seed: int = 0) -> None:
        if len(latent_shape) != 3:
            raise ValueError(f'latent_shape must be (C, h, w), got {tuple(latent_shape)}')
        self.latent_shape = tuple(int(x) for x in latent_shape)
        if classes_from:
            from .latent_dataset import LatentShardDataset
            present = LatentShardDataset(classes_from, use_flip=False, latent_norm=False).labels
            classes: int | list[int] = sorted(set(int(x) for x in present.tolist() if int(x) >= 0))
        else:
            classes = int(num_classes)
        self.classes = classes
        self.labels = class_balanced_labels(int(num_samples), classes)
        self.seed = int(seed)
        self.metainfo = dict(num_samples=int(num_samples), seed=self.seed, latent_shape=list(self.latent_shape),
                             classes=classes, classes_from=classes_from)

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f'index {i} out of range for {len(self)} samples')
        seed = self.seed + int(i)
        return dict(inputs=seeded_noise(self.latent_shape, seed),
                    data_samples=dict(label=int(self.labels[i]), seed=seed, index=int(i)))
