"""Latents, their statistics and the DiT project refuse files that lie and settings that would give silent garbage
(issue 20, items 4 and 7): real files on disk, the real tools."""
from __future__ import annotations

import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tiny_vae_fixtures  # noqa: F401  (registers the tiny test model and datasets)
from transvae.apis import extract_latents_cli, test_cli, train_cli
from transvae.registry import MODELS
from transvae.utils.latent_shards import LatentFileError, list_shards, load_latents, load_stats

import projects.lightningdit.lightningdit  # noqa: F401  (registers the DiT)
from projects.lightningdit.tests.ldit_helpers import write_shards

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DIT_CONFIG = osp.join(ROOT, 'projects', 'lightningdit', 'configs',
                      'lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py')
VAE = dict(type='VAE', arch=dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4,
                                 attn_levels=[], mid_attn=False),
           encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
           rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


# ------------------------------------------------------------------------------------------------- files that lie
def test_truncated_and_malformed_shards_refused_naming_the_file(tmp_path):
    from projects.lightningdit.lightningdit.datasets import LatentShardDataset
    good = str(tmp_path / 'good')
    write_shards(good, sizes=(5, 4), shape=(4, 2, 2))
    cases = {}
    # truncated with os.truncate (a copy killed mid-write by something else than extract_latents)
    d = str(tmp_path / 'truncated')
    shutil.copytree(good, d)
    p = osp.join(d, 'latents_00001.safetensors')
    os.truncate(p, os.path.getsize(p) - 17)
    cases['truncated'] = (d, p, 'not a readable safetensors')
    # garbage bytes
    d = str(tmp_path / 'garbage')
    shutil.copytree(good, d)
    p = osp.join(d, 'latents_00000.safetensors')
    open(p, 'wb').write(b'\x00' * 8 + b'not a shard' * 10)
    cases['garbage'] = (d, p, 'not a readable safetensors')
    # arrays that disagree in length / a wrong dtype
    for name, tensors, msg in [
            ('length', dict(latents=torch.zeros(5, 4, 2, 2), latents_flip=torch.zeros(5, 4, 2, 2),
                            labels=torch.zeros(4, dtype=torch.int64)), 'disagree in length'),
            ('dtype', dict(latents=torch.zeros(5, 4, 2, 2), latents_flip=torch.zeros(5, 4, 2, 2),
                           labels=torch.zeros(5)), 'expected an integer'),
            ('flipshape', dict(latents=torch.zeros(5, 4, 2, 2), latents_flip=torch.zeros(5, 4, 2, 1),
                               labels=torch.zeros(5, dtype=torch.int64)), 'latents_flip')]:
        d = str(tmp_path / name)
        shutil.copytree(good, d)
        p = osp.join(d, 'latents_00001.safetensors')
        save_file(tensors, p, metadata={'json': '{"num_shards": 2}'})
        cases[name] = (d, p, msg)
    for name, (d, p, msg) in cases.items():
        with pytest.raises(LatentFileError, match=msg) as e:
            LatentShardDataset(d)
        assert p in str(e.value), name
        with pytest.raises(LatentFileError):  # the analysis tools' reader: the same validation
            load_latents(d)
    # statistics with the wrong channel count
    d = str(tmp_path / 'stats')
    shutil.copytree(good, d)
    save_file({'mean': torch.zeros(1, 3, 1, 1), 'std': torch.ones(1, 3, 1, 1)},
              osp.join(d, 'latents_stats.safetensors'))
    with pytest.raises(LatentFileError, match='3 channels, the latents have 4'):
        LatentShardDataset(d)
    save_file({'mean': torch.zeros(1, 4, 1, 1), 'std': torch.full((1, 4, 1, 1), float('nan'))},
              osp.join(d, 'latents_stats.safetensors'))
    with pytest.raises(LatentFileError, match='not finite'):
        load_stats(d, num_channels=4)
    assert len(LatentShardDataset(good)) == 9  # the untouched folder still loads


def test_fid_statistics_npy_truncated_and_lying_npz_refused(tmp_path):
    from projects.lightningdit.lightningdit.evaluation import load_reference_npz
    from transvae.evaluation.functional.fid import FIDStatisticsError, load_fid_statistics
    mu, sigma = np.arange(8.0), np.eye(8)
    good = str(tmp_path / 'good.npz')
    np.savez(good, mu=mu, sigma=sigma)
    got = load_fid_statistics(good, dim=8)
    assert np.array_equal(got[0], mu) and np.array_equal(got[1], sigma)
    npy = str(tmp_path / 'ref.npz')  # a .npy under the .npz name (np.save(..., allow the suffix))
    with open(npy, 'wb') as f:
        np.save(f, mu)
    with pytest.raises(FIDStatisticsError, match='single .npy array'):
        load_reference_npz(npy)
    trunc = str(tmp_path / 'trunc.npz')
    shutil.copy(good, trunc)
    os.truncate(trunc, os.path.getsize(good) // 2)
    with pytest.raises(FIDStatisticsError, match='not a readable .npz'):
        load_fid_statistics(trunc, dim=8)
    bad = {'shape.npz': dict(mu=mu, sigma=np.eye(7)), 'dtype.npz': dict(mu=mu.astype(np.int64), sigma=sigma),
           'nan.npz': dict(mu=mu * np.nan, sigma=sigma)}
    for name, arrays in bad.items():
        np.savez(str(tmp_path / name), **arrays)
        with pytest.raises(FIDStatisticsError, match=name):
            load_fid_statistics(str(tmp_path / name), dim=8)
    with pytest.raises(FIDStatisticsError, match='expected \\(2048,\\)'):  # the consumer's dimension
        load_reference_npz(good)
    np.savez(str(tmp_path / 'nokey.npz'), mu=mu)
    with pytest.raises(KeyError, match='sigma'):
        load_fid_statistics(str(tmp_path / 'nokey.npz'), dim=8)
    # a header that claims a 2048^2 float64 sigma (32 MB) in a file of a few hundred bytes: refused unread
    lie = str(tmp_path / 'lie.npz')
    import io
    import zipfile
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, dict(descr='<f8', fortran_order=False, shape=(2048, 2048)))
    with zipfile.ZipFile(lie, 'w') as z:
        z.writestr('mu.npy', _npy_bytes(np.zeros(2048)))
        z.writestr('sigma.npy', hdr.getvalue() + b'\0' * 64)
    with pytest.raises(FIDStatisticsError, match='claims 33554432 bytes'):
        load_fid_statistics(lie)


def _npy_bytes(a: np.ndarray) -> bytes:
    import io
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


# ----------------------------------------------------------------------------------------------- extract_latents
def _vae(tmp_path, seed: int = 0, nan: bool = False):
    cfg = tmp_path / 'vae_cfg.py'
    cfg.write_text(f"default_scope = 'transvae'\nmodel = {VAE!r}\n"
                   "test_dataloader = dict(batch_size=2, collate_fn=dict(type='skip_none_collate'), "
                   "dataset=dict(type='TestLabelledImages', n=6))\n")
    torch.manual_seed(seed)
    sd = MODELS.build(VAE).state_dict()
    if nan:
        sd[next(k for k in sd if k.endswith('weight'))].view(-1)[0] = float('nan')
    ckpt = str(tmp_path / f'vae_{seed}{"_nan" if nan else ""}.pth')
    torch.save({'state_dict': sd}, ckpt)
    return str(cfg), ckpt


def _files(d):
    return {f: open(osp.join(d, f), 'rb').read() for f in sorted(os.listdir(d)) if f.startswith('latents_0')}


def test_extract_resume_with_another_checkpoint_or_flip_refused(tmp_path):
    cfg, ckpt_a = _vae(tmp_path, 0)
    _, ckpt_b = _vae(tmp_path, 1)
    out = str(tmp_path / 'lat')
    args = ['--out', out, '--shard-size', '2', '--num-workers', '0', '--device', 'cpu']
    extract_latents_cli.main([cfg, ckpt_a] + args)
    os.remove(osp.join(out, 'latents_00002.safetensors'))  # an interrupted run: one shard to go
    before = _files(out)
    with pytest.raises(SystemExit, match='checkpoint_sha256: recorded') as e:
        # resumed with another checkpoint: would mix two VAEs' latents
        extract_latents_cli.main([cfg, ckpt_b] + args)
    assert 'use another --out' in str(e.value)
    with pytest.raises(SystemExit, match='flip: recorded False, this run True'):
        extract_latents_cli.main([cfg, ckpt_a] + args + ['--flip'])
    with pytest.raises(SystemExit, match='config_sha256'):
        extract_latents_cli.main([cfg, ckpt_a] + args + ['--cfg-options', 'test_dataloader.dataset.n=5'])
    assert _files(out) == before  # nothing written, nothing mixed
    shutil.copy(ckpt_a, str(tmp_path / 'copy.pth'))  # the same weights under another name resume fine
    extract_latents_cli.main([cfg, str(tmp_path / 'copy.pth')] + args)
    assert len(list_shards(out)) == 3 and load_latents(out)['indices'].tolist() == list(range(6))


def test_extract_nan_weights_refused_before_any_shard(tmp_path):
    cfg, ckpt = _vae(tmp_path, 0, nan=True)
    out = str(tmp_path / 'lat')
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'extract_latents.py'), cfg, ckpt, '--out', out,
                           '--num-workers', '0', '--device', 'cpu'], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT))
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert 'error: checkpoint' in proc.stderr and 'not finite' in proc.stderr and ckpt in proc.stderr
    assert not list_shards(out)


def test_nonfinite_latents_never_written(tmp_path):
    """A batch whose latents are not finite (finite weights, an overflowing input path) is refused with the first bad
    dataset index, and no shard is written."""
    from transvae.utils.latent_shards import check_finite_latents
    z = torch.zeros(3, 4, 2, 2)
    z[1, 0, 0, 0] = float('inf')
    with pytest.raises(LatentFileError, match='dataset index 11'):
        check_finite_latents(dict(latents=z, indices=torch.tensor([10, 11, 12])), 'shard x')


# --------------------------------------------------------------------------------------------------------- the DiT
def test_guidance_and_sampler_settings_refused_at_build():
    from transvae.engine.config_validation import ConfigValueError
    dit = dict(type='LatentFlowModel', latent_size=4,
               backbone=dict(type='LightningDiT', arch=None, depth=1, embed_dims=32, num_heads=2, patch_size=2,
                             in_channels=4, num_classes=3))
    for key, val, msg in [('guidance', dict(type='ClassifierFreeGuidance', scale=float('inf')), 'guidance.scale'),
                          ('guidance', dict(type='ClassifierFreeGuidance', scale=float('nan')), 'guidance.scale'),
                          ('guidance', dict(type='ClassifierFreeGuidance', scale=-1.0), 'guidance.scale'),
                          ('guidance', dict(type='ClassifierFreeGuidance', interval_start=1.5), 'interval_start'),
                          ('sampler', dict(type='EulerODESampler', num_steps=0), 'num_steps'),
                          ('sampler', dict(type='EulerODESampler', shift=float('nan')), 'sampler.shift')]:
        with pytest.raises(ConfigValueError, match=msg):
            MODELS.build(dict(dit, **{key: val}))
    MODELS.build(dict(dit, guidance=dict(type='ClassifierFreeGuidance', scale=6.7, interval_start=0.11)))


def _vae_files(tmp_path):
    vae_cfg = tmp_path / 'dvae.py'
    vae_cfg.write_text(f"default_scope = 'transvae'\nmodel = {VAE!r}\n")
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'dvae.pth')
    torch.save({'state_dict': MODELS.build(VAE).state_dict()}, ckpt)
    return str(vae_cfg), ckpt


def test_nonfinite_samples_refused_and_trusted_legacy_vae(tmp_path):
    import argparse

    from projects.lightningdit.lightningdit.evaluation import FrozenLatentDecoder
    from transvae.engine.checkpoint_io import UntrustedCheckpointError, trusted_checkpoints
    lat = str(tmp_path / 'lat')
    write_shards(lat, sizes=(3,), shape=(4, 2, 2))
    vae_cfg, ckpt = _vae_files(tmp_path)
    dec = FrozenLatentDecoder.from_config(vae_cfg, ckpt, lat)
    assert dec(torch.zeros(2, 4, 2, 2)).shape == (2, 3, 4, 4)
    z = torch.zeros(2, 4, 2, 2)
    z[1] = float('nan')  # what guidance.scale = inf produced: all-black samples and FID 673 before
    with pytest.raises(ValueError, match='1 of 2 generated latents are not finite'):
        dec(z)
    # a legacy checkpoint (needs unpickling) is refused unless the tool's --trust-checkpoint block is entered
    legacy = str(tmp_path / 'legacy.pth')
    torch.save({'state_dict': torch.load(ckpt)['state_dict'], 'meta': {'args': argparse.Namespace(x=1)}}, legacy)
    with pytest.raises(UntrustedCheckpointError):
        FrozenLatentDecoder.from_config(vae_cfg, legacy, lat)
    with trusted_checkpoints(True):  # what tools/test.py --trust-checkpoint enters around the evaluation
        FrozenLatentDecoder.from_config(vae_cfg, legacy, lat)


def _dit_config(tmp_path, lat, vae_cfg, vae_ckpt, reference, **model):
    cfg = tmp_path / f'dit_{len(os.listdir(tmp_path))}.py'
    m = dict(dict(latent_size=4, in_channels=4), **model)
    cfg.write_text(f"""_base_ = [{DIT_CONFIG!r}]
model = dict(latent_size={m['latent_size']}, backbone=dict(_delete_=True, type='LightningDiT', arch=None, depth=1,
             embed_dims=32, num_heads=2, patch_size=2, in_channels={m['in_channels']}, num_classes=3),
             sampler=dict(num_steps=2))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={lat!r}, num_classes=3))
optim_wrapper = dict(_delete_=True, type='SafeOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(max_iters=2)
custom_hooks = []
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
test_dataloader = dict(batch_size=2, dataset=dict(num_samples=2, latent_shape=(4, 4, 4), num_classes=3))
test_evaluator = dict(vae_config={vae_cfg!r}, vae_checkpoint={vae_ckpt!r}, latent_dir={lat!r},
                      reference={reference!r}, reference_size=8)
""")
    return str(cfg)


def test_dit_latent_size_or_channels_differ_from_data_refused_before_first_step(tmp_path):
    lat = str(tmp_path / 'lat')
    write_shards(lat, sizes=(4,), shape=(4, 4, 4))
    vae_cfg, vae_ckpt = _vae_files(tmp_path)
    for model, msg in [(dict(latent_size=8), 'model.latent_size=4'),
                       (dict(in_channels=8), 'model.backbone.in_channels=4')]:
        cfg = _dit_config(tmp_path, lat, vae_cfg, vae_ckpt, 'none.npz', **model)
        wd = str(tmp_path / f'wd_{len(model)}_{list(model)[0]}')
        with pytest.raises(SystemExit, match=msg):
            train_cli.main([cfg, '--work-dir', wd])
        assert not [f for f in os.listdir(wd) if f.endswith('.pth')]  # refused before the first step


def test_dit_evaluation_checks_fid_reference_before_sampling(tmp_path, monkeypatch):
    from projects.lightningdit.lightningdit.models import LatentFlowModel
    lat = str(tmp_path / 'lat')
    write_shards(lat, sizes=(4,), shape=(4, 4, 4))
    vae_cfg, vae_ckpt = _vae_files(tmp_path)
    torch.manual_seed(0)
    from mmengine.config import Config
    cfg = _dit_config(tmp_path, lat, vae_cfg, vae_ckpt, str(tmp_path / 'missing.npz'))
    ckpt = str(tmp_path / 'dit.pth')
    torch.save({'state_dict': MODELS.build(Config.fromfile(cfg).model).state_dict()}, ckpt)
    calls = []
    sample = LatentFlowModel.sample
    monkeypatch.setattr(LatentFlowModel, 'sample', lambda self, *a, **k: calls.append(1) or sample(self, *a, **k))
    with pytest.raises(SystemExit, match='error: .*missing.npz'):  # one line, no traceback
        test_cli.main([cfg, ckpt, '--work-dir', str(tmp_path / 'twd')])
    npy = str(tmp_path / 'stats.npz')
    with open(npy, 'wb') as f:
        np.save(f, np.zeros(2048))
    with pytest.raises(SystemExit, match='error: .*single .npy array'):
        test_cli.main([cfg, ckpt, '--work-dir', str(tmp_path / 'twd'), '--cfg-options',
                   f'test_evaluator.reference={npy}'])
    assert not calls  # nothing was sampled
