"""One source of latent statistics: the folder tools/extract_latents.py writes and the package
tools/model_converters/export_pretrained.py --latent-dir writes carry the identical values (the VAE's
latent_mean / latent_std buffers), in either convention; latents of another checkpoint or config are refused."""
from __future__ import annotations

import json
import os.path as osp
import runpy
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import tiny_vae_fixtures  # noqa: F401  (registers TestLabelledImages)
from transvae.apis import extract_latents_cli
from transvae.apis.pretrained import PretrainedFormatError, export_pretrained, from_pretrained
from transvae.registry import MODELS
from transvae.utils.latent_shards import LatentProvenanceError, list_shards, load_stats, stats_metadata
from transvae.utils.latent_statistics import compute_latent_stats

MODEL = dict(type='VAE', arch=dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4,
                                   attn_levels=[], mid_attn=False),
             encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
             rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


def _setup(tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"default_scope = 'transvae'\nmodel = {MODEL!r}\n"
                   "test_dataloader = dict(batch_size=3, dataset=dict(type='TestLabelledImages', n=6))\n")
    ckpts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ckpts.append(str(tmp_path / f'vae{seed}.pth'))
        torch.save({'state_dict': MODELS.build(MODEL).state_dict(), 'meta': {'iter': 10}}, ckpts[-1])
    return str(cfg), ckpts


def _extract(cfg, ckpt, out, *extra):
    return extract_latents_cli.main([cfg, ckpt, '--out', out, '--flip', '--shard-size', '4', '--num-workers', '0',
                                     '--device', 'cpu', *extra])


def test_package_carries_the_folder_statistics(tmp_path, monkeypatch):
    cfg, (ckpt, other) = _setup(tmp_path)
    lat = str(tmp_path / 'lat')
    stats = _extract(cfg, ckpt, lat)
    assert stats['convention'] == 'transvae' and stats_metadata(lat)['convention'] == 'transvae'
    folder = load_stats(lat)
    again = compute_latent_stats(list_shards(lat))  # the one function, on the written shards
    assert torch.equal(again['mean'], folder['mean']) and torch.equal(again['std'], folder['std'])
    tool = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'model_converters', 'export_pretrained.py')
    monkeypatch.setattr(sys, 'argv', [tool, cfg, ckpt, str(tmp_path / 'pkg'), '--latent-dir', lat])
    with pytest.raises(SystemExit) as e:  # the command line
        runpy.run_path(tool, run_name='__main__')
    assert e.value.code == 0
    with open(tmp_path / 'pkg' / 'config.json') as fh:
        info = json.load(fh)
    model = from_pretrained(str(tmp_path / 'pkg'))
    assert torch.equal(model.latent_mean, folder['mean'].view(-1)) and torch.equal(model.latent_std,
                                                                                    folder['std'].view(-1))
    assert info['latent_stats']['convention'] == 'transvae' and info['latent_stats']['layout'] == 'transvae'
    assert info['latent_stats']['count'] == stats['count'] == 2 * 6 * 8 * 8
    assert info['latent_mean'] == folder['mean'].view(-1).double().tolist()
    # the official convention, chosen at extraction, travels the same way
    lat2 = str(tmp_path / 'lat2')
    s2 = _extract(cfg, ckpt, lat2, '--stats-convention', 'lightningdit')
    assert s2['convention'] == 'lightningdit' and s2['count'] == 6 * 8 * 8
    assert not torch.equal(s2['std'], stats['std'])
    export_pretrained(cfg, ckpt, str(tmp_path / 'pkg2'), latent_dir=lat2)
    m2 = from_pretrained(str(tmp_path / 'pkg2'))
    assert torch.equal(m2.latent_std, load_stats(lat2)['std'].view(-1))
    # latents of another checkpoint are refused, naming both
    with pytest.raises(LatentProvenanceError, match=r'come from another VAE: its VAE weights are .*vae0.pth.*vae1.pth'):
        export_pretrained(cfg, other, str(tmp_path / 'pkg3'), latent_dir=lat)
    # a folder that records no VAE cannot vouch for its statistics
    bare = tmp_path / 'bare'
    bare.mkdir()
    for name in ('latents_00000.safetensors', 'latents_00001.safetensors', 'latents_stats.safetensors'):
        save_file(load_file(f'{lat}/{name}'), str(bare / name), metadata={'json': json.dumps(dict(num_shards=2))})
    with pytest.raises(PretrainedFormatError, match='does not record which VAE wrote it'):
        export_pretrained(cfg, ckpt, str(tmp_path / 'pkg4'), latent_dir=str(bare))
