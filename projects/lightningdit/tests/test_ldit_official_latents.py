"""Official LightningDiT latent folders: our DiT data path reads a folder written the official way (per-rank
safetensors shards in their key layout + ``latents_stats.pt``), our converter writes that layout, and the official
``ImgLatentDataset`` (imported from ``$LIGHTNINGDIT_OFFICIAL_REPO``, a snapshot of hustvl/LightningDiT) reads what we
wrote with the same items and statistics. The DiT's decoder refuses latents of another VAE."""
from __future__ import annotations

import importlib.util
import json
import os
import os.path as osp
import runpy
import shutil
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from projects.lightningdit.tests.ldit_helpers import write_shards

from projects.lightningdit.lightningdit.datasets import LatentNormalizer, LatentShardDataset, ShardGroupedSampler
from transvae.utils.latent_folders import LightningDiTLayout, TransvaeLayout, layout_of, write_official_folder
from transvae.utils.latent_shards import LatentFileError, LatentProvenanceError, list_shards, load_stats
from transvae.utils.latent_statistics import compute_latent_stats

OFFICIAL = os.environ.get('LIGHTNINGDIT_OFFICIAL_REPO')
TOOL = osp.join(osp.dirname(__file__), '..', '..', '..', 'tools', 'model_converters', 'latents_to_official.py')


def _convert(monkeypatch, *argv) -> object:
    """Run tools/model_converters/latents_to_official.py in this process; its exit code (0) or ``error:`` line."""
    monkeypatch.setattr(sys, 'argv', [TOOL, *argv])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(TOOL, run_name='__main__')
    return e.value.code


def _official_dataset_class():
    """``ImgLatentDataset`` of the official snapshot (it imports only numpy, torch, safetensors and tqdm)."""
    if not OFFICIAL:
        pytest.skip('LIGHTNINGDIT_OFFICIAL_REPO is not set (a checkout of hustvl/LightningDiT): the comparison with '
                    'the official ImgLatentDataset needs it')
    path = osp.join(OFFICIAL, 'datasets', 'img_latent_dataset.py')
    if not osp.isfile(path):
        pytest.skip(f'{path} not found in LIGHTNINGDIT_OFFICIAL_REPO')
    spec = importlib.util.spec_from_file_location('_official_img_latent_dataset', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ImgLatentDataset


def _write_official(root, per_rank=((4, 3), (4, 2)), shape=(4, 2, 2), seed=0):
    """A folder as the official extract_features.py writes it (ranks x shards, its keys and metadata, and the
    latents_stats.pt its ImgLatentDataset caches); returns latents, flips and labels in the official item order."""
    os.makedirs(root)
    g = torch.Generator().manual_seed(seed)
    zs, fs, ys = [], [], []
    for rank, sizes in enumerate(per_rank):
        for s, n in enumerate(sizes):
            z, f = torch.randn(n, *shape, generator=g) * 2 + 1, torch.randn(n, *shape, generator=g)
            y = torch.randint(0, 5, (n,), generator=g)
            save_file({'latents': z, 'latents_flip': f, 'labels': y},
                      osp.join(root, f'latents_rank{rank:02d}_shard{s:03d}.safetensors'),
                      metadata={'total_size': f'{n}', 'dtype': f'{z.dtype}', 'device': 'cpu'})
            zs.append(z), fs.append(f), ys.append(y)
    z = torch.cat(zs)
    torch.save({'mean': z.mean(dim=[0, 2, 3], keepdim=True), 'std': z.std(dim=[0, 2, 3], keepdim=True)},
               osp.join(root, 'latents_stats.pt'))
    return z, torch.cat(fs), torch.cat(ys)


def test_our_reader_reads_an_official_folder(tmp_path):
    root = str(tmp_path / 'off')
    z, f, y = _write_official(root)
    assert layout_of(root) is LightningDiTLayout
    ds = LatentShardDataset(root, use_flip=True, num_classes=5)
    assert len(ds) == 13 and ds.latent_shape == (4, 2, 2) and torch.equal(ds.labels, y)
    assert ds.shard_ranges == [(0, 4), (4, 7), (7, 11), (11, 13)]
    st = torch.load(osp.join(root, 'latents_stats.pt'), weights_only=True)
    torch.manual_seed(0)
    for i in range(13):
        item = ds[i]
        raw = f[i] if item['data_samples']['flipped'] else z[i]
        assert (item['inputs'] - ((raw - st['mean'][0]) / st['std'][0])).abs().max() < 1e-6
        assert item['data_samples']['label'] == int(y[i])
    assert sorted(ShardGroupedSampler(ds, seed=0)) == list(range(13))
    assert LatentNormalizer.from_dir(root).num_channels == 4
    assert LightningDiTLayout.provenance(root) is None  # the official code records none
    # refused: a stray .safetensors (the official reader would read it as a shard), a missing shard, a pickle
    bad = str(tmp_path / 'stray')
    shutil.copytree(root, bad)
    save_file({'x': torch.zeros(1)}, osp.join(bad, 'extra.safetensors'))
    with pytest.raises(LatentFileError, match='extra.safetensors is not an official shard'):
        LatentShardDataset(bad)
    gap = str(tmp_path / 'gap')
    shutil.copytree(root, gap)
    os.remove(osp.join(gap, 'latents_rank01_shard000.safetensors'))
    with pytest.raises(FileNotFoundError, match='rank 1 .* latents_rank01_shard000'):
        LatentShardDataset(gap)
    unsafe = str(tmp_path / 'unsafe')
    shutil.copytree(root, unsafe)
    torch.save({'mean': st['mean'], 'std': st['std'], 'fn': shutil.rmtree}, osp.join(unsafe, 'latents_stats.pt'))
    with pytest.raises(LatentFileError, match='cannot be loaded safely'):
        LatentShardDataset(unsafe)
    both = str(tmp_path / 'both')
    shutil.copytree(root, both)
    write_shards(both, sizes=(2,), stats=False)
    with pytest.raises(LatentFileError, match='two layouts'):
        LatentShardDataset(both)


def test_converter_writes_the_official_layout(tmp_path, monkeypatch):
    src = str(tmp_path / 'ours')
    z = write_shards(src, sizes=(5, 4), shape=(4, 2, 2), labels_mod=3)
    with open(osp.join(src, 'latents_provenance.json'), 'w') as fh:
        json.dump(dict(checkpoint_sha256='a' * 64, vae_sha256='b' * 64), fh)
    out = str(tmp_path / 'off')
    assert _convert(monkeypatch, src, out, '--shard-size', '4') == 0
    assert sorted(os.listdir(out)) == ['latents_provenance.json', 'latents_rank00_shard000.safetensors',
                                       'latents_rank00_shard001.safetensors', 'latents_rank00_shard002.safetensors',
                                       'latents_stats.pt']
    st = LightningDiTLayout.load_stats(out)
    ref = load_stats(src)
    assert torch.equal(st['mean'], ref['mean']) and torch.equal(st['std'], ref['std'])  # copied, bit for bit
    assert LightningDiTLayout.provenance(out)['checkpoint_sha256'] == 'a' * 64  # our provenance travels along
    a, b = LatentShardDataset(src, use_flip=False), LatentShardDataset(out, use_flip=False)
    assert len(a) == len(b) == 9 and torch.equal(a.labels, b.labels)
    assert all(torch.equal(a[i]['inputs'], b[i]['inputs']) for i in range(9))
    recomputed = str(tmp_path / 'off2')
    assert _convert(monkeypatch, src, recomputed, '--stats-convention', 'lightningdit') == 0
    st2 = LightningDiTLayout.load_stats(recomputed)
    assert (st2['std'].view(-1).double() - z.double().std(dim=(0, 2, 3))).abs().max() < 1e-6
    assert LightningDiTLayout.stats_info(recomputed)['convention'] == 'lightningdit'
    assert 'already holds latents_rank00_shard000' in _convert(monkeypatch, src, out)  # nothing overwritten
    noflip = str(tmp_path / 'noflip')
    write_shards(noflip, flip=False)
    assert 'latents_flip' in _convert(monkeypatch, noflip, str(tmp_path / 'x'))


def test_official_dataset_reads_our_folder_and_stats_match(tmp_path):
    ImgLatentDataset = _official_dataset_class()
    src = str(tmp_path / 'ours')
    z = write_shards(src, sizes=(6, 5), shape=(4, 2, 2), labels_mod=4)
    out = str(tmp_path / 'off')
    write_official_folder(src, out, shard_size=4, progress=False)
    ours = LatentShardDataset(out, use_flip=True)
    official = ImgLatentDataset(out, latent_norm=True, latent_multiplier=1.0)
    assert len(official) == len(ours) == 11
    flips = z.flip(-1)  # write_shards stores the mirror image as latents_flip
    diff = 0.0
    for i in range(11):
        np.random.seed(i)
        use_plain = np.random.uniform(0, 1) > 0.5  # the official draw of its __getitem__
        np.random.seed(i)
        feat, label = official[i]
        mine = ours.normalizer.normalize(z[i] if use_plain else flips[i])
        diff = max(diff, float((feat - mine).abs().max()))
        assert int(label) == int(ours.labels[i]) == i % 4
    assert diff < 1e-6, diff
    # the statistics the official code computes itself (it caches them when latents_stats.pt is absent) equal the
    # 'lightningdit' convention of ours: unflipped latents, unbiased std (all items: fewer than 10000)
    os.remove(osp.join(out, 'latents_stats.pt'))
    np.random.seed(0)
    computed = ImgLatentDataset(out, latent_norm=True)
    mine = compute_latent_stats(list(LightningDiTLayout.list_shards(out)), 'lightningdit')
    d_mean = float((computed._latent_mean - mine['mean']).abs().max())
    d_std = float((computed._latent_std - mine['std']).abs().max())
    assert d_mean < 1e-6 and d_std < 1e-6, (d_mean, d_std)
    # and the official folder's stats as our reader loads them (weights_only) are the ones it wrote
    st = LightningDiTLayout.load_stats(out)
    assert torch.equal(st['mean'], computed._latent_mean.float()) and torch.equal(st['std'], computed._latent_std)
    assert TransvaeLayout.list_shards(src) == list_shards(src, complete=True)
    # a folder written the official way (two ranks): the official reader and ours give the same items
    off = str(tmp_path / 'official')
    z, f, y = _write_official(off)
    theirs, ours = ImgLatentDataset(off, latent_norm=True), LatentShardDataset(off, use_flip=True)
    assert len(theirs) == len(ours) == 13
    for i in range(13):
        np.random.seed(100 + i)
        use_plain = np.random.uniform(0, 1) > 0.5
        np.random.seed(100 + i)
        feat, label = theirs[i]
        assert int(label) == int(ours.labels[i]) == int(y[i])
        assert (feat - ours.normalizer.normalize(z[i] if use_plain else f[i])).abs().max() < 1e-6


def test_decoder_refuses_latents_of_another_vae(tmp_path):
    from mmengine.config import Config

    from projects.lightningdit.lightningdit.evaluation.decoder import FrozenLatentDecoder
    from transvae.apis.latents import checkpoint_id, vae_fingerprint
    from transvae.registry import MODELS
    vae = dict(type='VAE', arch=dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4,
                                     attn_levels=[], mid_attn=False),
               encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
               rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))
    cfg_path = str(tmp_path / 'vae.py')
    with open(cfg_path, 'w') as fh:
        fh.write(f"default_scope = 'transvae'\nmodel = {vae!r}\n")
    ckpts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ckpts.append(str(tmp_path / f'vae{seed}.pth'))
        torch.save({'state_dict': MODELS.build(vae).state_dict()}, ckpts[-1])
    lat = str(tmp_path / 'lat')
    write_shards(lat, sizes=(3,), shape=(4, 2, 2))
    fp = vae_fingerprint(Config.fromfile(cfg_path))

    def record(**rec):
        with open(osp.join(lat, 'latents_provenance.json'), 'w') as fh:
            json.dump(dict(checkpoint=ckpts[0], config='vae.py', **rec), fh)

    record(checkpoint_sha256=checkpoint_id(ckpts[0]), vae_sha256=fp)
    dec = FrozenLatentDecoder.from_config(cfg_path, ckpts[0], lat)  # the VAE that wrote them: accepted
    assert dec.normalizer.num_channels == 4
    with pytest.raises(LatentProvenanceError, match=r'come from another VAE: its VAE weights are .*vae0.pth.*'
                       r'the given checkpoint is .*vae1.pth'):
        FrozenLatentDecoder.from_config(cfg_path, ckpts[1], lat)
    # training: the hook compares the training latents with the VAE the config decodes with, before the first step
    from projects.lightningdit.lightningdit.hooks.latent_data_check_hook import check_latent_vae
    dit_cfg = Config(dict(test_evaluator=dict(type='GenerationFIDMetric', vae_config=cfg_path,
                                              vae_checkpoint=ckpts[1]),
                          custom_hooks=[dict(type='LatentSampleGridHook', vae_config=cfg_path,
                                             vae_checkpoint=ckpts[0])]))
    ds = LatentShardDataset(lat, use_flip=False)
    with pytest.raises(LatentProvenanceError, match=r'test_evaluator.*vae1.pth|vae1.pth.*test_evaluator'):
        check_latent_vae(dit_cfg, ds, 'training')
    dit_cfg.test_evaluator.vae_checkpoint = ckpts[0]
    assert check_latent_vae(dit_cfg, ds, 'training') == 2
    dit_cfg.test_evaluator.vae_checkpoint = str(tmp_path / 'not_yet_trained.pth')  # refused later, by its consumer
    assert check_latent_vae(dit_cfg, ds, 'training') == 1
    record(checkpoint_sha256=checkpoint_id(ckpts[0]), vae_sha256='f' * 64)
    with pytest.raises(LatentProvenanceError, match=r"its VAE config is 'vae.py'.*builds another model"):
        FrozenLatentDecoder.from_config(cfg_path, ckpts[0], lat)
    os.remove(osp.join(lat, 'latents_provenance.json'))  # nothing recorded (the shards' metadata name no VAE)
    with pytest.warns(UserWarning, match='record no VAE'):
        assert check_latent_vae(dit_cfg, ds, 'training') == 0
