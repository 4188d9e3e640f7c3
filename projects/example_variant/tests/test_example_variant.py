"""projects/example_variant: a user package outside transvae/ whose variants are selected from configs through
``custom_imports`` and trained for two iterations by tools/train.py -- the block subclass in a fresh process (the
command a user runs), the new FFN and the new position encoding through the same tool in-process."""
from __future__ import annotations

import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import tiny_vae_fixtures as tv
from transvae.apis.train_cli import main as train_main
from transvae.engine.checkpoint_io import load_checkpoint_file

PROJECT = osp.join(tv.REPO, 'projects', 'example_variant')
# no validation / grid hook: two training iterations are what is being shown
FAST = ['--max-iters', '2', '--batch-size', '2', '--cfg-options', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'custom_hooks=[]']


def _config(name: str) -> str:
    return osp.join(PROJECT, 'configs', f'transvae-micro_{name}.py')


def _weights(work_dir) -> dict:
    ckpt = load_checkpoint_file(osp.join(str(work_dir), 'iter_2.pth'))
    return ckpt['state_dict']


def test_subclassed_block_trains_through_the_cli(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=PROJECT)
    proc = subprocess.run([sys.executable, osp.join(tv.REPO, 'tools', 'train.py'), _config('layerscale-block'),
                           '--work-dir', str(tmp_path), *FAST], cwd=tv.REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sd = _weights(tmp_path)
    gammas = [k for k in sd if k.endswith('gamma1')]
    assert gammas and all(k.startswith(('encoder.', 'decoder.')) for k in gammas)
    assert any(not torch.allclose(sd[k], torch.full_like(sd[k], 1e-2)) for k in gammas)  # trained


@pytest.mark.parametrize('name, key', [('relu2-ffn', 'ffn.fc1.weight'), ('mixed-rope', 'pe.freqs')])
def test_new_ffn_and_position_encoding_train(tmp_path, monkeypatch, name, key):
    monkeypatch.syspath_prepend(PROJECT)  # what PYTHONPATH=projects/example_variant does for the CLI
    monkeypatch.chdir(tv.REPO)
    train_main([_config(name), '--work-dir', str(tmp_path), *FAST])
    sd = _weights(tmp_path)
    keys = [k for k in sd if k.endswith(key)]
    assert keys, f'{key} not in the checkpoint: the variant was not built'
    from transvae.registry import MODELS
    assert MODELS.get({'relu2-ffn': 'ReLU2FFN', 'mixed-rope': 'MixedRoPE2D'}[name]).__module__.startswith(
        'example_variant.')


def test_mixed_rope_starts_as_axial_rope(monkeypatch):
    """The example PE is real: at initialisation its rotations equal axial RoPE's up to the pair order."""
    monkeypatch.syspath_prepend(PROJECT)
    from example_variant.mixed_rope import MixedRoPE2D
    ang = MixedRoPE2D(head_dim=16).get_angles((3, 4))  # (12, 8)
    ys, xs = torch.meshgrid(torch.arange(3.), torch.arange(4.), indexing='ij')
    base = 10000.0 ** (-2.0 * torch.arange(8) / 16)
    want = torch.where(torch.arange(8) % 2 == 0, ys.reshape(-1, 1) * base, xs.reshape(-1, 1) * base)
    assert torch.allclose(ang, want)
