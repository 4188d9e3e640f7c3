"""Every model and recipe config builds its model (with the CPU preset: micro widths) and reconstructs an image.

The experiment configs are covered, with their one-change checks, by tests/test_models/test_variants.py.
"""
from __future__ import annotations

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from transvae.engine.config_surgery import apply_preset
from transvae.registry import MODELS

ROOT = osp.join(osp.dirname(__file__), '..', '..', 'configs')
FILES = sorted(glob.glob(osp.join(ROOT, '_base_', 'models', '*.py')) + glob.glob(osp.join(ROOT, 'transvae', '*.py'))
               + glob.glob(osp.join(ROOT, 'benchmarks', '*.py')))


def test_config_dirs_are_covered():
    assert len(FILES) >= 20


@pytest.mark.parametrize('path', FILES, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds_with_cpu_preset(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type in ('VAE', 'VAEGAN'), cfg.model.type
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


def _channels_per_group(cfg: Config) -> list[int]:
    """Channels per group of every GroupNorm in the config's encoder and decoder (built on the meta device)."""
    arch = cfg.model.get('arch') or {}
    with torch.device('meta'):
        nets = [MODELS.build(cfg.model[k], default_args=arch) for k in ('encoder', 'decoder')]
    return [m.num_channels // m.num_groups for n in nets for m in n.modules() if isinstance(m, torch.nn.GroupNorm)]


@pytest.mark.parametrize('path', FILES + sorted(glob.glob(osp.join(ROOT, 'experiments', '*.py'))),
                         ids=lambda p: osp.relpath(p, ROOT))
def test_cpu_preset_keeps_the_paper_group_norm_regime(path):
    """The micro widths must not turn GroupNorm into InstanceNorm where the paper-size model is not.

    ``GroupNorm(32)`` at 32 channels normalises every channel of every image on its own (its mean colour and
    contrast are removed); that handicapped every CNN part of the studies until the presets set 8 groups.
    """
    cfg = Config.fromfile(path)
    paper = _channels_per_group(cfg)
    micro = _channels_per_group(apply_preset(Config.fromfile(path), 'cpu'))
    assert bool(micro) == bool(paper)
    if paper:
        assert min(micro) >= min(4, min(paper)), f'{path}: channels per group {micro} at the CPU preset, {paper} at full size'
    if 'micro' in osp.basename(path):  # a micro-width model file is its own (and the main job's) full size
        assert min(paper) >= 4, f'{path}: channels per group {paper}'
