"""The runtime and schedule base configs load, and every schedule's `cpu` preset applies."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

import tiny_vae_fixtures as tv  # tests/helpers (pyproject pythonpath)

from transvae.engine.config_surgery import apply_preset  # noqa: E402
from transvae.registry import HOOKS, OPTIM_WRAPPERS, RUNNERS  # noqa: E402

SCHEDULES = sorted(glob.glob(osp.join(tv.REPO, 'configs', '_base_', 'schedules', '*.py')))


def test_default_runtime():
    cfg = Config.fromfile(osp.join(tv.REPO, 'configs', '_base_', 'default_runtime.py'))
    assert cfg.default_scope == 'transvae' and RUNNERS.get(cfg.runner_type)
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 3 and cfg.log_processor.by_epoch is False
    for hook in cfg.default_hooks.values():
        assert HOOKS.get(hook.type)


@pytest.mark.parametrize('path', SCHEDULES, ids=[osp.basename(p) for p in SCHEDULES])
def test_schedule(path):
    cfg = Config.fromfile(path)
    if 'constructor' in cfg.optim_wrapper:  # a GAN schedule: one registered wrapper per optimizer
        assert cfg.optim_wrapper.constructor == 'VAEGANOptimWrapperConstructor'
        for name in ('generator', 'discriminator'):
            assert OPTIM_WRAPPERS.get(cfg.optim_wrapper[name].type)
    else:
        assert OPTIM_WRAPPERS.get(cfg.optim_wrapper.type)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.val_cfg.type in ('ValLoop', 'SkipEmptyValLoop')
    for hook in cfg.get('custom_hooks', []):
        assert HOOKS.get(hook.type)
    apply_preset(cfg, 'cpu')
    assert cfg.train_cfg.max_iters <= 100000


def test_ablation_schedule_values():
    cfg = Config.fromfile(osp.join(tv.REPO, 'configs', '_base_', 'schedules', 'schedule_ablation_5e.py'))
    assert cfg.train_cfg.max_iters == 5 * 5005 and cfg.param_scheduler[0].end == 1000
    assert cfg.optim_wrapper.optimizer.lr == 1e-4 and tuple(cfg.optim_wrapper.optimizer.betas) == (0.5, 0.9)
    apply_preset(cfg, 'cpu')
    assert cfg.train_cfg.max_iters == 200 and cfg.optim_wrapper.optimizer.lr == 2e-4
    assert cfg.param_scheduler[0].end == 50 and cfg.optim_wrapper.optimizer.betas == (0.5, 0.9)
