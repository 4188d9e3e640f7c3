"""The one computation of latent statistics (transvae.utils.latent_statistics) against a hand computation, in both
conventions (ours: every latent and its flip, population std; the official LightningDiT: unflipped, unbiased std),
its random subset (numpy's legacy draw, as the official code's np.random.choice) and its errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from transvae.utils.errors import UserInputError
from transvae.utils.latent_shards import LatentFileError, load_stats, shard_path, stats_metadata, write_stats
from transvae.utils.latent_statistics import CONVENTIONS, compute_latent_stats, get_convention


def _folder(root, sizes=(5, 4), shape=(3, 2, 2), flip=True, seed=0):
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    zs, fs, paths = [], [], []
    for i, n in enumerate(sizes):
        z = torch.randn(n, *shape, generator=g) * torch.tensor([1.0, 2.0, 0.5]).view(1, -1, 1, 1) + 3
        t = dict(latents=z, labels=torch.arange(n) % 2)
        if flip:  # not the mirror image, so the flipped latents change the statistics
            t['latents_flip'] = torch.randn(n, *shape, generator=g) - 1
            fs.append(t['latents_flip'])
        path = shard_path(str(root), i)
        save_file(t, path, metadata={'json': json.dumps(dict(num_shards=len(sizes), shard=i))})
        zs.append(z)
        paths.append(path)
    return paths, torch.cat(zs).double(), (torch.cat(fs).double() if flip else None)


def test_both_conventions_equal_a_hand_computation(tmp_path):
    paths, z, f = _folder(tmp_path / 'a')
    ours = compute_latent_stats(paths)  # the default: 'transvae'
    both = torch.cat([z, f])
    assert ours['convention'] == 'transvae' and ours['count'] == 18 * 4 and ours['num_items'] == 9
    assert ours['mean'].shape == ours['std'].shape == (1, 3, 1, 1) and ours['mean'].dtype == torch.float32
    assert (ours['mean'].view(-1).double() - both.mean(dim=(0, 2, 3))).abs().max() < 1e-6
    assert (ours['std'].view(-1).double() - both.std(dim=(0, 2, 3), correction=0)).abs().max() < 1e-6
    official = compute_latent_stats(paths, 'lightningdit')
    assert official['count'] == 9 * 4 and not official['with_flip']
    assert (official['mean'].view(-1).double() - z.mean(dim=(0, 2, 3))).abs().max() < 1e-6
    assert (official['std'].view(-1).double() - z.std(dim=(0, 2, 3), correction=1)).abs().max() < 1e-6
    # the two conventions really differ on these latents (the flips are other values, the std is unbiased)
    assert (official['mean'] - ours['mean']).abs().max() > 0.5
    # a random subset: the official draw after np.random.seed(7)
    np.random.seed(7)
    pick = torch.from_numpy(np.random.choice(9, 4, replace=False))
    sub = compute_latent_stats(paths, 'lightningdit', max_items=4, seed=7)
    assert sub['num_items'] == 4 and sub['seed'] == 7
    assert (sub['mean'].view(-1).double() - z[pick].mean(dim=(0, 2, 3))).abs().max() < 1e-6
    assert (sub['std'].view(-1).double() - z[pick].std(dim=(0, 2, 3))).abs().max() < 1e-6
    # no flips stored: ours takes the latents alone
    noflip, z2, _ = _folder(tmp_path / 'b', flip=False)
    s2 = compute_latent_stats(noflip)
    assert not s2['with_flip']
    assert (s2['std'].view(-1).double() - z2.std(dim=(0, 2, 3), correction=0)).abs().max() < 1e-6


def test_stats_file_records_the_convention_and_errors(tmp_path):
    paths, _, _ = _folder(tmp_path / 'a')
    stats = compute_latent_stats(paths, 'lightningdit')
    write_stats(str(tmp_path / 'a'), stats)
    back = load_stats(str(tmp_path / 'a'))
    assert torch.equal(back['mean'], stats['mean']) and torch.equal(back['std'], stats['std'])
    assert stats_metadata(str(tmp_path / 'a')) == dict(count=36, num_items=9, convention='lightningdit',
                                                       with_flip=False, max_items=None, seed=None)
    assert set(CONVENTIONS) == {'transvae', 'lightningdit'} and get_convention('transvae').correction == 0
    with pytest.raises(UserInputError, match="unknown latent statistics convention 'official'"):
        compute_latent_stats(paths, 'official')
    with pytest.raises(LatentFileError, match='too few'):  # one value per channel: no unbiased std
        one, _, _ = _folder(tmp_path / 'one', sizes=(1,), shape=(3, 1, 1), flip=False)
        compute_latent_stats(one, 'lightningdit')
    other, _, _ = _folder(tmp_path / 'c', sizes=(2,), shape=(3, 4, 4))
    with pytest.raises(LatentFileError, match='shards of two extractions'):
        compute_latent_stats([paths[0], other[0]])
