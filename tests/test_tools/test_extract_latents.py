"""Latent extraction (transvae.apis.latents behind tools/extract_latents.py: shards, flips, stats, resume), the latent
uniformity metrics (transvae.evaluation.latent_stats)."""
from __future__ import annotations

import os
import os.path as osp

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from transvae.apis import extract_latents_cli, latents
from transvae.evaluation import latent_stats as ls
from transvae.registry import DATASETS, MODELS
from transvae.utils.latent_shards import list_shards, load_latents, load_stats


MODEL = dict(type='VAE', arch=dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4,
                                   attn_levels=[], mid_attn=False),
             encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
             rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


@DATASETS.register_module(name='_TinyLatentTestDataset', force=True)
class _Tiny(Dataset):
    """``n`` random 16 x 16 uint8 images packed like PackVAEInputs; item ``skip`` is unreadable (``None``)."""

    def __init__(self, n: int = 10, size: int = 16, skip: int = -1, pipeline=None) -> None:
        g = torch.Generator().manual_seed(0)
        self.imgs = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        self.skip = skip

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        if i == self.skip:
            return None
        return dict(inputs=self.imgs[i].clone(), data_samples=dict(label=i % 3, img_path=f'{i}.png'))


def _config(tmp_path, skip=-1):
    path = tmp_path / 'cfg.py'
    path.write_text(f"default_scope = 'transvae'\nmodel = {MODEL!r}\n"
                    f"test_dataloader = dict(batch_size=2, collate_fn=dict(type='skip_none_collate'), "
                    f"dataset=dict(type='_TinyLatentTestDataset', n=10, skip={skip}))\n")
    torch.manual_seed(0)
    model = MODELS.build(MODEL).eval()
    ckpt = str(tmp_path / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    return str(path), ckpt, model


def test_extract_shards_flip_stats_resume(tmp_path):
    cfg, ckpt, model = _config(tmp_path, skip=5)
    out = str(tmp_path / 'lat')
    args = [cfg, ckpt, '--out', out, '--flip', '--shard-size', '4', '--batch-size', '3', '--num-workers', '0',
            '--device', 'cpu']
    extract_latents_cli.main(args)
    shards = list_shards(out)
    assert [osp.basename(s) for s in shards] == [f'latents_{i:05d}.safetensors' for i in range(3)]
    data = load_latents(out)
    assert data['indices'].tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9]  # item 5 unreadable: skipped
    assert data['labels'].tolist() == [i % 3 for i in data['indices'].tolist()]
    ds = _Tiny(10)
    x = torch.stack([ds[i]['inputs'] for i in data['indices'].tolist()]).float() / 127.5 - 1
    with torch.no_grad():
        assert torch.allclose(data['latents'], model.encode(x).mode(), atol=1e-5)
        assert torch.allclose(data['latents_flip'], model.encode(x.flip(-1)).mode(), atol=1e-5)
    assert data['latents'].shape == (9, 4, 8, 8)
    stats = load_stats(out)
    allz = torch.cat([data['latents'], data['latents_flip']]).double()
    assert torch.allclose(stats['mean'].view(-1).double(), allz.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(stats['std'].view(-1).double(), allz.std(dim=(0, 2, 3), unbiased=False), atol=1e-5)
    assert stats['mean'].shape == (1, 4, 1, 1)
    # resume: complete shards are kept, a missing one is rewritten identically, no temporary file remains
    before = load_file(shards[1])
    mtime0 = os.stat(shards[0]).st_mtime_ns
    os.remove(shards[1])
    extract_latents_cli.main(args)
    assert os.stat(shards[0]).st_mtime_ns == mtime0
    after = load_file(shards[1])
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not [f for f in os.listdir(out) if '.tmp' in f]
    with pytest.raises(SystemExit, match='error: .*shard_size'):  # a different layout is refused, not mixed
        extract_latents_cli.main([cfg, ckpt, '--out', out, '--shard-size', '5', '--num-workers', '0', '--flip'])


def _kde_density(points):
    from scipy.stats import gaussian_kde
    return gaussian_kde(points.T)(points.T)


def test_density_metrics_uniform_vs_clustered():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(0, 1, (600, 2))
    centers = rng.uniform(0, 1, (4, 2))
    clustered = np.concatenate([centers[rng.integers(0, 4, 450)] + rng.normal(0, 0.02, (450, 2)),
                                rng.uniform(0, 1, (150, 2))])
    mu, mc = ls.density_metrics(_kde_density(uniform)), ls.density_metrics(_kde_density(clustered))
    assert mu['density_cv'] < 0.35 and mu['gini'] < 0.2 and mu['normalized_entropy'] > 0.99
    assert mc['density_cv'] > 1.5 * mu['density_cv'] and mc['gini'] > 1.5 * mu['gini']
    assert mc['normalized_entropy'] < mu['normalized_entropy']
    # the definitions on a hand example: rho = (1, 1, 2) -> Gini = (-2*1 + 0*1 + 2*2) / (3*4) = 1/6
    m = ls.density_metrics(np.array([1.0, 1.0, 2.0]))
    assert np.isclose(m['gini'], 1 / 6) and np.isclose(m['density_cv'], np.std([1, 1, 2]) / (4 / 3))
    p = np.array([0.25, 0.25, 0.5])
    assert np.isclose(m['normalized_entropy'], -(p * np.log2(p)).sum() / np.log2(3))
    assert ls.density_metrics(np.ones(10))['gini'] == 0.0


def test_latent_stats_pipeline_smoke():
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(40, 4, 2, 2))
    with threadpool_limits(1):  # OpenMP t-SNE on a busy 2-core machine is far slower with 2 threads
        res = ls.run_metrics(lat, num_samples=30, runs=2, latents_flip=-lat, mean=np.zeros(4), std=np.ones(4),
                             progress=False, perplexity=5.0, max_iter=250)
    assert set(res['mean']) == {'density_cv', 'normalized_entropy', 'gini'} and len(res['runs']) == 2
    assert 0 < res['mean']['normalized_entropy'] <= 1 and res['num_samples'] == 30


def test_resolution_by_transform_capability():
    """--resolution changes the transforms that declare ``resolution_keys``, whatever their registered name."""
    pipeline = [dict(type='LoadImageRGB'), dict(type='ResizeShortSide', size=256), dict(type='CenterCrop', size=256),
                dict(type='PackVAEInputs')]
    assert latents.set_pipeline_size(pipeline, 64) == 2
    assert [t.get('size') for t in pipeline] == [None, 64, 64, None]
    with pytest.raises(ValueError, match='resolution_keys'):
        latents.set_pipeline_size([dict(type='LoadImageRGB'), dict(type='PackVAEInputs')], 64)
