"""Generate N class-balanced images with a DiT + frozen VAE and extract their Inception features, batched and
split over ranks (sample ``i`` has label ``i % K`` and noise seed ``seed + i`` on whichever rank draws it, so the
result does not depend on the number of processes)."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from torch import Tensor

from transvae.evaluation.functional.fid import get_fid_inception

from .decoder import FrozenLatentDecoder
from .generation_fid import class_balanced_labels


@torch.no_grad()
def generate_features(model, decoder: FrozenLatentDecoder, num_samples: int, num_classes: int | Sequence[int],
                      batch_size: int = 64, seed: int = 0, keep_images: int = 64, sampler=None,
                      device: str | torch.device = 'cpu', progress: bool = True) -> dict:
    """Sample, decode and featurise ``num_samples`` images.

    Args:
        model: a :class:`LatentFlowModel` (EMA weights loaded), on ``device``.
        decoder: the frozen VAE decoder of the latents.
        num_samples: N (10,000 for FID-10K).
        num_classes: K for the class-balanced labels ``i % K``, or the list of class ids to balance over (sample
            ``i`` gets ``classes[i % len(classes)]``; e.g. the classes present in a small latent set).
        batch_size: images per sampling batch on each rank.
        seed: noise seed of sample 0.
        keep_images: the first images (by index) returned for a grid.
        sampler: override of the model's ODE sampler.
        device: where the DiT and Inception run.
        progress: show a progress bar on rank 0.

    Returns:
        On every rank: ``feats`` ``(N, 2048)`` float64 numpy in index order, ``images`` ``(keep, 3, H, W)`` uint8,
        ``labels`` ``(N,)``, ``seconds`` (sampling wall time on this rank).
    """
    from tqdm import tqdm
    rank, world = get_dist_info()
    if isinstance(num_classes, int):
        labels = class_balanced_labels(num_samples, num_classes)
    else:
        classes = torch.as_tensor(list(num_classes), dtype=torch.int64)
        labels = classes[class_balanced_labels(num_samples, len(classes))]
    mine = list(range(rank, num_samples, world))
    inception = get_fid_inception(device)
    feats: dict[int, np.ndarray] = {}
    images: dict[int, Tensor] = {}
    t0 = time.perf_counter()
    for start in tqdm(range(0, len(mine), batch_size), desc='FID samples', disable=not progress or rank != 0):
        idx = mine[start:start + batch_size]
        y = labels[idx].to(device)
        z = model.sample(y, seeds=[seed + i for i in idx], sampler=sampler)
        imgs = decoder(z)  # (b, 3, H, W) in [0, 1]
        u8 = torch.round(imgs * 255).clamp(0, 255).to(torch.uint8)
        f = inception(u8).double().cpu().numpy()
        for j, i in enumerate(idx):
            feats[i] = f[j]
            if i < keep_images:
                images[i] = u8[j]
    seconds = time.perf_counter() - t0
    if world > 1:
        parts = all_gather_object((feats, images))
        feats = {k: v for p in parts for k, v in p[0].items()}
        images = {k: v for p in parts for k, v in p[1].items()}
    order = sorted(feats)
    if order != list(range(num_samples)):
        raise RuntimeError(f'gathered {len(order)} of {num_samples} samples')
    return dict(feats=np.stack([feats[i] for i in order]),
                images=torch.stack([images[i] for i in sorted(images)]) if images else None,
                labels=labels, seconds=seconds)
