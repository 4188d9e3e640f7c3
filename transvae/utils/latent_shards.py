"""Reading the latent shards of ``tools/extract_latents.py``: ``DIR/latents_{i:05d}.safetensors`` + statistics.

Each shard holds ``latents`` ``(n, d, h, w)`` float32 posterior means, optionally ``latents_flip`` (of the
horizontally flipped images), ``labels`` ``(n,)`` and ``indices`` ``(n,)`` int64, with a ``json`` metadata entry;
``DIR/latents_stats.safetensors`` holds the per-channel ``mean`` and ``std`` ``(1, d, 1, 1)``. The analysis tools
(``latent_stats.py``, ``linear_probe.py``) read them through these functions.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import re

import torch

__all__ = ['SHARD_PATTERN', 'STATS_FILE', 'shard_path', 'list_shards', 'shard_metadata', 'load_latents',
           'load_stats']

#: file name of shard ``i``
SHARD_PATTERN = re.compile(r'^latents_(\d{5})\.safetensors$')
#: file name of the per-channel statistics
STATS_FILE = 'latents_stats.safetensors'


def shard_path(out: str, i: int) -> str:
    """Path of shard ``i`` in the directory ``out``."""
    return osp.join(out, f'latents_{i:05d}.safetensors')


def list_shards(out: str) -> list[str]:
    """Sorted paths of the shards in ``out``."""
    return sorted(osp.join(out, f) for f in os.listdir(out) if SHARD_PATTERN.match(f))


def shard_metadata(path: str) -> dict:
    """The JSON metadata of a shard (``{}`` when it has none)."""
    from safetensors import safe_open
    with safe_open(path, framework='pt') as f:
        return json.loads((f.metadata() or {}).get('json', '{}'))


def load_latents(out: str, with_flip: bool = True) -> dict[str, torch.Tensor]:
    """All shards of ``out`` concatenated: ``latents``, ``labels``, ``indices`` (and ``latents_flip``)."""
    from safetensors.torch import load_file
    parts: dict[str, list[torch.Tensor]] = {}
    for path in list_shards(out):
        for k, v in load_file(path).items():
            if k == 'latents_flip' and not with_flip:
                continue
            parts.setdefault(k, []).append(v)
    if not parts:
        raise FileNotFoundError(f'no latents_*.safetensors in {out}')
    return {k: torch.cat(v) for k, v in parts.items()}


def load_stats(out: str) -> dict[str, torch.Tensor]:
    """``{'mean', 'std'}`` ``(1, d, 1, 1)`` of the latents in ``out``."""
    from safetensors.torch import load_file
    return load_file(osp.join(out, STATS_FILE))
