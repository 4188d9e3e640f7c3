"""The one computation of per-channel latent statistics (``mean`` / ``std``), in a named convention.

Every latent folder, whichever wrote it (``tools/extract_latents.py``, the official LightningDiT
``extract_features.py``), holds shards of ``latents`` ``(n, d, h, w)`` (and ``latents_flip``, the same images
h-flipped); the DiT normalises them per channel, ``(z - mean_c) / std_c``. Two conventions exist:

* ``'transvae'`` (ours, the default of ``tools/extract_latents.py``): every latent **and its flip** (where stored),
  population standard deviation (divide by ``N``);
* ``'lightningdit'`` (the official ``datasets/img_latent_dataset.py`` ``compute_latent_stats``): the **unflipped**
  latents only, unbiased standard deviation (divide by ``N - 1``, ``torch.std``'s default). The official code draws a
  random subset of ``min(10000, n)`` images with numpy's global random state; ``max_items=10000, seed=S`` here draws
  the same subset as the official code after ``np.random.seed(S)`` (numpy's legacy ``RandomState.choice``).

``N`` counts values per channel: ``items * h * w`` (``* 2`` with the flips). Sums are accumulated in float64 shard by
shard (memory: one shard), the result is float32 ``(1, d, 1, 1)``, the layout of both statistics files.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from transvae.utils.errors import UserInputError
from transvae.utils.latent_shards import LatentFileError, check_shard, read_shard

__all__ = ['StatsConvention', 'CONVENTIONS', 'DEFAULT_CONVENTION', 'get_convention', 'compute_latent_stats']


@dataclass(frozen=True)
class StatsConvention:
    """How the per-channel statistics of a latent folder are computed.

    Attributes:
        name: the name a command line / metadata uses (a key of :data:`CONVENTIONS`).
        use_flip: include ``latents_flip`` where the folder stores it (every flipped latent counts as one more
            item; a folder extracted without ``--flip``: the latents alone).
        correction: ``0``: population variance (divide by ``N``); ``1``: unbiased (divide by ``N - 1``).
        origin: where the convention comes from (for messages and the model card).
    """

    name: str
    use_flip: bool
    correction: int
    origin: str


#: the named conventions (module docstring)
CONVENTIONS: dict[str, StatsConvention] = {
    'transvae': StatsConvention('transvae', use_flip=True, correction=0,
                                origin='tools/extract_latents.py: every latent and its flip, population std'),
    'lightningdit': StatsConvention('lightningdit', use_flip=False, correction=1,
                                    origin='official LightningDiT ImgLatentDataset.compute_latent_stats: unflipped '
                                    'latents, unbiased std'),
}
DEFAULT_CONVENTION = 'transvae'


class StatsConventionError(UserInputError, ValueError):
    """An unknown statistics convention name."""


def get_convention(name: str | StatsConvention) -> StatsConvention:
    """The convention called ``name`` (or ``name`` itself); an unknown name is a :class:`StatsConventionError`."""
    if isinstance(name, StatsConvention):
        return name
    if name not in CONVENTIONS:
        raise StatsConventionError(f'unknown latent statistics convention {name!r}: choose one of '
                                   f'{sorted(CONVENTIONS)}')
    return CONVENTIONS[name]


def _subset(num_items: int, max_items: Optional[int], seed: int) -> Optional[np.ndarray]:
    """Sorted item indices of the official random draw (``None``: every item)."""
    if max_items is None:
        return None
    if max_items < 1:
        raise StatsConventionError(f'max_items must be >= 1, got {max_items}')
    # the official draw: np.random.choice(n, min(max_items, n), replace=False) on the global (legacy) random state
    return np.sort(np.random.RandomState(seed).choice(num_items, min(max_items, num_items), replace=False))


def compute_latent_stats(shards: Sequence[str], convention: str | StatsConvention = DEFAULT_CONVENTION,
                         max_items: Optional[int] = None, seed: int = 0) -> dict:
    """Per-channel mean and standard deviation of the latents in ``shards``.

    Args:
        shards: the shard files of one folder in item order (:func:`transvae.utils.latent_shards.list_shards`, or
            the official layout's :func:`transvae.utils.latent_folders.list_official_shards`); each is validated
            (:func:`~transvae.utils.latent_shards.read_shard`: keys, dtypes, one latent shape, finite values).
        convention: a name of :data:`CONVENTIONS` or a :class:`StatsConvention`.
        max_items: a random subset of this many items (the official draw, module docstring); ``None``: all.
        seed: the seed of that draw.

    Returns:
        ``{'mean': (1, d, 1, 1) float32, 'std': (1, d, 1, 1) float32, 'count': N (values per channel),
        'num_items': items used, 'convention': name, 'max_items', 'seed'}``.

    Raises:
        LatentFileError: a malformed shard, shards of two latent shapes, a shard without the ``latents_flip`` the
            first one has, fewer than two values per channel for an unbiased std, or non-finite sums.
    """
    conv = get_convention(convention)
    if not shards:
        raise LatentFileError('no latent shard to compute statistics of')
    first = check_shard(shards[0], require_labels=False)
    with_flip = conv.use_flip and 'latents_flip' in first.keys
    keys = ('latents', 'latents_flip') if with_flip else ('latents',)
    infos = [check_shard(p, require_flip=with_flip, require_labels=False) for p in shards]
    starts = np.cumsum([0] + [i.num_items for i in infos])
    pick = _subset(int(starts[-1]), max_items, seed)
    s = sq = None
    count = used = 0
    for k, (path, info) in enumerate(zip(shards, infos)):
        if info.latent_shape != infos[0].latent_shape:
            raise LatentFileError(f'{path}: latents of shape {info.latent_shape}, {shards[0]} has '
                                  f'{infos[0].latent_shape}: shards of two extractions')
        rows = None
        if pick is not None:
            rows = pick[(pick >= starts[k]) & (pick < starts[k + 1])] - starts[k]
            if not rows.size:
                continue
        t = read_shard(path, keys=keys)  # float32, finite
        used += info.num_items if rows is None else int(rows.size)
        for key in keys:
            z = t[key] if rows is None else t[key][torch.from_numpy(rows)]
            z = z.double()
            s = z.sum(dim=(0, 2, 3)) if s is None else s + z.sum(dim=(0, 2, 3))
            sq = (z ** 2).sum(dim=(0, 2, 3)) if sq is None else sq + (z ** 2).sum(dim=(0, 2, 3))
            count += z.shape[0] * z.shape[2] * z.shape[3]
    if count - conv.correction < 1:
        raise LatentFileError(f'{shards[0]}: {count} value(s) per channel, too few for a standard deviation')
    mean = s / count
    var = (sq / count - mean ** 2).clamp_min(0)
    if conv.correction:
        var = var * count / (count - conv.correction)
    stats = {'mean': mean.float().view(1, -1, 1, 1), 'std': var.sqrt().float().view(1, -1, 1, 1)}
    if not all(bool(torch.isfinite(v).all()) for v in stats.values()):  # overflow of finite but huge latents
        raise LatentFileError(f'{shards[0]}: the latent statistics are not finite (latents too large for float64 '
                              'sums)')
    return dict(stats, count=count, num_items=used, convention=conv.name, with_flip=with_flip, max_items=max_items,
                seed=seed if max_items is not None else None)
