"""Latent shards as a dataset: normalisation round trip, flips, streaming sampler, clear errors; centre-crop
extraction of the training split."""
from __future__ import annotations

import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from projects.lightningdit.tests.ldit_helpers import write_shards

from projects.lightningdit.lightningdit.datasets import LatentNormalizer, LatentShardDataset, ShardGroupedSampler


def test_normalizer_round_trip(tmp_path):
    z = write_shards(str(tmp_path))
    norm = LatentNormalizer.from_dir(str(tmp_path), multiplier=0.5)
    zn = norm.normalize(z)
    assert torch.allclose(norm.denormalize(zn), z, atol=1e-5)
    n1 = LatentNormalizer.from_dir(str(tmp_path)).normalize(torch.cat([z, z.flip(-1)]))
    assert n1.mean(dim=(0, 2, 3)).abs().max() < 1e-5 and (n1.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-4
    assert torch.allclose(zn, n1[:len(z)] * 0.5, atol=1e-5)
    with pytest.raises(ValueError, match='channels'):
        norm.normalize(torch.zeros(1, 3, 2, 2))


def test_dataset_items_flips_and_labels(tmp_path):
    z = write_shards(str(tmp_path))
    ds = LatentShardDataset(str(tmp_path), use_flip=True, num_classes=3)
    norm = LatentNormalizer.from_dir(str(tmp_path))
    assert len(ds) == 9 and ds.latent_shape == (4, 2, 2) and ds.shard_ranges == [(0, 5), (5, 9)]
    torch.manual_seed(0)
    flips = 0
    for _ in range(40):
        for i in (0, 6):
            item = ds[i]
            raw = z[i].flip(-1) if item['data_samples']['flipped'] else z[i]
            assert torch.allclose(item['inputs'], norm.normalize(raw), atol=1e-5)
            assert item['data_samples']['label'] == i % 3
            flips += item['data_samples']['flipped']
    assert 20 < flips < 60  # about half of 80 draws
    plain = LatentShardDataset(str(tmp_path), use_flip=False, latent_norm=False)
    assert torch.equal(plain[3]['inputs'], z[3]) and not plain[3]['data_samples']['flipped']
    with pytest.raises(IndexError):
        plain[9]


def test_sampler_groups_shards_and_splits_ranks(tmp_path):
    write_shards(str(tmp_path), sizes=(4, 4, 3))
    ds = LatentShardDataset(str(tmp_path), use_flip=False)
    s = ShardGroupedSampler(ds, shuffle=True, seed=1)
    order = list(s)
    assert sorted(order) == list(range(11))
    shard_of = [0] * 4 + [1] * 4 + [2] * 3
    runs = sum(1 for a, b in zip(order, order[1:]) if shard_of[a] != shard_of[b])
    assert runs == 2  # each shard is visited once, as a block
    assert list(ShardGroupedSampler(ds, shuffle=True, seed=1)) == order  # deterministic (resume)
    s.set_epoch(1)
    assert list(s) != order
    parts = []
    for rank in range(2):
        r = ShardGroupedSampler(ds, seed=3)
        r.rank, r.world_size, r.num_samples = rank, 2, 6
        parts.append(list(r))
    assert len(parts[0]) == len(parts[1]) == 6 and set(parts[0] + parts[1]) == set(range(11))
    rep = list(ShardGroupedSampler(ds, seed=1, repeat=3))
    assert len(rep) == 33 and all(rep.count(i) == 3 for i in range(11)) and rep[:11] != rep[11:22]


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        LatentShardDataset(str(tmp_path / 'nope'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='no latents_XXXXX'):
        LatentShardDataset(str(empty))
    gap = str(tmp_path / 'gap')
    write_shards(gap, sizes=(2, 2, 2))
    os.remove(osp.join(gap, 'latents_00001.safetensors'))
    with pytest.raises(FileNotFoundError, match=r'1 of 3 shards missing \(latents_00001'):
        LatentShardDataset(gap)
    mixed = str(tmp_path / 'mixed')
    write_shards(mixed, sizes=(2, 2))
    write_shards(str(tmp_path / 'other'), sizes=(2, 2), shape=(4, 4, 4))
    os.replace(osp.join(tmp_path, 'other', 'latents_00001.safetensors'), osp.join(mixed, 'latents_00001.safetensors'))
    with pytest.raises(ValueError, match=r'latents_00001.safetensors holds latents of shape \(4, 4, 4\)'):
        LatentShardDataset(mixed)
    big = str(tmp_path / 'big')
    write_shards(big, sizes=(2,), shape=(4, 4, 4))
    with pytest.raises(ValueError, match=r'but the configured latent_shape has \(4, 2, 2\)'):
        LatentShardDataset(big, latent_shape=(4, 2, 2))
    nostats = str(tmp_path / 'nostats')
    write_shards(nostats, stats=False)
    with pytest.raises(FileNotFoundError, match='latent statistics .* not found'):
        LatentShardDataset(nostats)
    assert len(LatentShardDataset(nostats, latent_norm=False)) == 9
    noflip = str(tmp_path / 'noflip')
    write_shards(noflip, flip=False)
    with pytest.raises(KeyError, match='--flip'):
        LatentShardDataset(noflip)
    with pytest.raises(ValueError, match=r'labels span \[0, 2\].*num_classes=2'):
        LatentShardDataset(noflip, use_flip=False, num_classes=2)


def test_extract_train_split_uses_deterministic_centre_crops(tmp_path):
    from mmengine.config import Config

    from transvae.apis.latents import build_dataset
    for cls in ('a', 'b'):
        os.makedirs(tmp_path / 'img' / 'train' / cls)
        arr = np.random.default_rng(len(cls)).integers(0, 255, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / 'img' / 'train' / cls / 'x.png')
    train = [dict(type='LoadImageRGB'), dict(type='RandomCrop', size=16), dict(type='RandomFlip', prob=0.5),
             dict(type='PackVAEInputs')]
    test = [dict(type='LoadImageRGB'), dict(type='ResizeShortSide', size=24), dict(type='CenterCrop', size=24),
            dict(type='PackVAEInputs')]
    ds = dict(type='ImageFolderDataset', data_root=str(tmp_path / 'img'), data_prefix='train')
    cfg = Config(dict(train_dataloader=dict(dataset=dict(ds, pipeline=train)),
                      test_dataloader=dict(dataset=dict(ds, pipeline=test))))
    a, b = build_dataset(cfg, 'train'), build_dataset(cfg, 'train')
    for i in range(2):
        x = a[i]['inputs']
        assert x.shape[-2:] == (24, 24) and torch.equal(x, b[i]['inputs'])  # centre crop, no random crop / flip
    assert build_dataset(cfg, 'train', resolution=16)[0]['inputs'].shape[-2:] == (16, 16)


def test_class_balanced_noise_dataset(tmp_path):
    from projects.lightningdit.lightningdit.datasets import ClassBalancedNoiseDataset, class_balanced_labels
    assert torch.bincount(class_balanced_labels(10000, 1000)).tolist() == [10] * 1000  # FID-10K: 10 per class
    assert class_balanced_labels(5, [2, 7]).tolist() == [2, 7, 2, 7, 2]
    ds = ClassBalancedNoiseDataset(num_samples=7, latent_shape=(4, 2, 2), num_classes=3, seed=10)
    assert len(ds) == 7 and [ds[i]['data_samples']['label'] for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    item = ds[4]
    assert item['data_samples'] == dict(label=1, seed=14, index=4) and item['inputs'].shape == (4, 2, 2)
    assert torch.equal(item['inputs'], torch.randn(4, 2, 2, generator=torch.Generator().manual_seed(14)))
    write_shards(str(tmp_path / 'few'), sizes=(4,), shape=(4, 2, 2), labels_mod=2)  # labels 0 1 only
    ds = ClassBalancedNoiseDataset(num_samples=5, latent_shape=(4, 2, 2), num_classes=32,
                                   classes_from=str(tmp_path / 'few'))
    assert ds.classes == [0, 1] and [ds[i]['data_samples']['label'] for i in range(5)] == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match='latent_shape'):
        ClassBalancedNoiseDataset(num_samples=5, latent_shape=(4, 2))
    with pytest.raises(ValueError, match='num_samples'):
        ClassBalancedNoiseDataset(num_samples=0, latent_shape=(4, 2, 2))
    with pytest.raises(IndexError):
        ds[5]


def test_class_balanced_sampler(tmp_path, monkeypatch):
    from projects.lightningdit.lightningdit.datasets import ClassBalancedSampler
    write_shards(str(tmp_path / 'lat'), sizes=(8, 4), shape=(4, 2, 2), labels_mod=12)  # labels 0..11
    ds = LatentShardDataset(str(tmp_path / 'lat'), use_flip=False)
    ds.labels = torch.tensor([0] * 9 + [1, 1, 2])  # 9 / 2 / 1 items: unbalanced
    s = ClassBalancedSampler(ds, num_samples=6000, seed=3)
    draw = list(s)
    assert len(draw) == len(s) == 6000 and list(s) == draw  # deterministic for a seed and epoch
    freq = torch.bincount(ds.labels[draw], minlength=3).double() / len(draw)
    assert torch.allclose(freq, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03)  # classes, not items
    assert torch.bincount(torch.tensor(draw))[:9].min() > 100  # the items of a class uniformly
    s.set_epoch(1)
    assert list(s) != draw
    whole = list(ClassBalancedSampler(ds, num_samples=8, seed=3))
    monkeypatch.setattr('projects.lightningdit.lightningdit.datasets.class_balanced_sampler.get_dist_info',
                        lambda: (1, 2))  # rank 1 of 2: every other draw of the same sequence
    r1 = ClassBalancedSampler(ds, num_samples=7, seed=3)
    assert len(r1) == 4 and list(r1) == whole[1::2]
    ds.labels = torch.tensor([0] * 11 + [-1])
    with pytest.raises(ValueError, match='labelled'):
        ClassBalancedSampler(ds)
    with pytest.raises(TypeError, match='labels'):
        ClassBalancedSampler(list(range(3)))
