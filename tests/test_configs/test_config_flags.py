"""--preset merging, the shortcut flags and config-mistake errors of tools/train.py (in-process, no training)."""
import os.path as osp

import pytest
import torch

import tiny_vae_fixtures as tv  # tests/helpers (pyproject pythonpath)
from transvae.apis import train_cli as train


def _cfg(tmp_path, *argv, extra=''):
    path = tv.write_config(str(tmp_path / 'tiny.py'), extra=extra)
    return train.build_config(train.parse_args([path, *argv]))


def test_preset_merges_nested_dicts(tmp_path):
    cfg = _cfg(tmp_path, '--preset', 'quick')
    assert cfg.train_cfg.max_iters == 3 and cfg.train_cfg.val_interval == 2  # merged, not replaced
    assert cfg.optim_wrapper.optimizer.lr == 5e-4 and tuple(cfg.optim_wrapper.optimizer.betas) == (0.5, 0.9)
    assert cfg.work_dir.endswith('tiny_quick')


def test_preset_delete_replaces_dict(tmp_path):
    cfg = _cfg(tmp_path, '--preset', 'swap')
    assert cfg.optim_wrapper.optimizer.type == 'SGD' and 'betas' not in cfg.optim_wrapper.optimizer
    assert 'max_consecutive' not in cfg.optim_wrapper and '_delete_' not in cfg.optim_wrapper


def test_preset_tables_of_bases_merge_in_order(tmp_path):
    extra = ("schedule_presets = dict(quick=dict(train_cfg=dict(max_iters=99, val_interval=7)), "
             "only_sched=dict(train_cfg=dict(max_iters=5)))\n")
    cfg = _cfg(tmp_path, '--preset', 'quick', extra=extra)
    assert cfg.train_cfg.max_iters == 3 and cfg.train_cfg.val_interval == 7  # leaf `presets` merged last
    cfg = _cfg(tmp_path, '--preset', 'only_sched', extra=extra)
    assert cfg.train_cfg.max_iters == 5


def test_missing_preset_lists_available(tmp_path):
    from transvae.engine.config_validation import ConfigKeyError  # a UserInputError: `error: ...` from the tool
    with pytest.raises(ConfigKeyError, match=r"Preset 'gpu' .*Available presets: quick, swap"):
        _cfg(tmp_path, '--preset', 'gpu')


def test_shortcuts(tmp_path):
    cfg = _cfg(tmp_path, '--data-root', '/data/x', '--batch-size', '5', '--max-iters', '7', '--resolution', '32',
               '--seed', '3', '--deterministic', '--amp', '--resume', '--work-dir', str(tmp_path / 'w'),
               '--cfg-options', 'optim_wrapper.optimizer.lr=0.01', 'randomness.seed=4')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/data/x'
    assert cfg.train_dataloader.batch_size == 5 and cfg.val_dataloader.batch_size == 2
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=7, val_interval=2)
    assert cfg.train_dataloader.dataset.pipeline[0].size == 32
    assert [t.get('size') for t in cfg.val_dataloader.dataset.pipeline] == [32, 32, None]
    assert cfg.randomness.seed == 4 and cfg.randomness.deterministic  # --cfg-options is applied last
    assert cfg.optim_wrapper.type == 'SafeAmpOptimWrapper' and cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.optim_wrapper.dtype == ('bfloat16' if not torch.cuda.is_available() else cfg.optim_wrapper.dtype)
    assert cfg.resume is True and cfg.load_from is None and cfg.work_dir == str(tmp_path / 'w')


def test_epochs_and_resume_path(tmp_path):
    cfg = _cfg(tmp_path, '--epochs', '2', '--resume', 'some/iter_5.pth')
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=1)
    assert cfg.resume is True and cfg.load_from == 'some/iter_5.pth'
    with pytest.raises(SystemExit):
        train.parse_args(['x.py', '--epochs', '2', '--max-iters', '3'])


def test_cpu_distributed_wrapper_cfg(tmp_path, monkeypatch):
    from transvae.engine import dist_setup
    cfg = _cfg(tmp_path, extra="model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')\n")
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)  # pretend the group exists
    assert dist_setup.init_cpu_distributed(cfg, 'pytorch') is True
    assert cfg.model_wrapper_cfg == dict(type='MMSeparateDistributedDataParallel', device_ids=None)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert dist_setup.init_cpu_distributed(cfg, 'none') is False


def test_unknown_type_names_registry(tmp_path):
    path = tv.write_config(str(tmp_path / 'tiny.py'), extra="model = dict(type='TestTinyVEA')\n")
    with pytest.raises(KeyError, match=r"'TestTinyVEA' is not registered in the transvae::model registry.*TestTinyVAE"):
        train.main([path, '--work-dir', str(tmp_path / 'w')])


def test_amp_bf16_trains_on_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('CPU autocast path')
    path = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=2, val_interval=2)
    train.main([path, '--work-dir', str(tmp_path / 'w'), '--amp'])
    ckpt = tv.load_ckpt(str(tmp_path / 'w' / 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2 and 'loss_scaler' not in ckpt['optimizer']
