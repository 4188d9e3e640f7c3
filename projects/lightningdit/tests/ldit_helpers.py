"""Shared helpers of the LightningDiT tests (and of ``tests/reliability/test_latents_dit.py``): tiny latent shards in
the format of :mod:`transvae.utils.latent_shards` (its file names; the tensors and metadata tools/extract_latents.py
writes)."""
from __future__ import annotations

import json
import os
import os.path as osp

import torch
from safetensors.torch import save_file

from transvae.utils.latent_shards import STATS_FILE, shard_path


def write_shards(root, sizes=(5, 4), shape=(4, 2, 2), flip=True, stats=True, labels_mod=3, seed=0):
    """Shards in the layout of tools/extract_latents.py; returns all latents (and flips) in dataset order."""
    os.makedirs(root, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    allz, allf, start = [], [], 0
    for i, n in enumerate(sizes):
        z = torch.randn(n, *shape, generator=g) * 3 + 1
        t = dict(latents=z, labels=torch.arange(start, start + n) % labels_mod,
                 indices=torch.arange(start, start + n))
        if flip:
            t['latents_flip'] = z.flip(-1)
            allf.append(t['latents_flip'])
        meta = dict(num_shards=len(sizes), shard=i, shard_size=max(sizes), flip=flip)
        save_file(t, shard_path(root, i), metadata={'json': json.dumps(meta)})
        allz.append(z)
        start += n
    allz = torch.cat(allz)
    if stats:
        both = torch.cat([allz] + allf)
        save_file({'mean': both.mean(dim=(0, 2, 3)).view(1, -1, 1, 1),
                   'std': both.std(dim=(0, 2, 3), unbiased=False).view(1, -1, 1, 1)},
                  osp.join(root, STATS_FILE))
    return allz
