"""Every model and recipe config builds its model (with the CPU preset: micro widths) and reconstructs an image.

The experiment configs are covered, with their one-change checks, by tests/test_models/test_variants.py.
"""
from __future__ import annotations

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from transvae.engine.utils import apply_preset
from transvae.registry import MODELS

ROOT = osp.join(osp.dirname(__file__), '..', '..', 'configs')
FILES = sorted(glob.glob(osp.join(ROOT, '_base_', 'models', '*.py')) + glob.glob(osp.join(ROOT, 'transvae', '*.py'))
               + glob.glob(osp.join(ROOT, 'benchmarks', '*.py')))


def test_config_dirs_are_covered():
    assert len(FILES) >= 20


@pytest.mark.parametrize('path', FILES, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds_with_cpu_preset(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type in ('VAE', 'VAEGAN', 'DiffusersAutoencoderKL'), cfg.model.type
    if cfg.model.type == 'DiffusersAutoencoderKL':
        pytest.skip('adapter configs load weights from a local diffusers directory (tested in test_adapters.py)')
    apply_preset(cfg, 'cpu')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    n = sum(p.numel() for p in list(model.encoder.parameters()) + list(model.decoder.parameters()))
    assert n < 5e6, f'{path}: the CPU preset should give a micro model, got {n / 1e6:.1f}M parameters'
    f = model.downsample_factor
    x = torch.rand(1, 3, 2 * f + 8, 2 * f) * 2 - 1  # not a multiple of f in height
    with torch.no_grad():
        y = model(x, mode='tensor')
    assert y.shape == x.shape and torch.isfinite(y).all()
