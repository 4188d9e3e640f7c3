"""The entry layer (transvae.apis.entry): one config resolution, one model build, for every command and init_model."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from transvae.apis import extract_latents_cli, init_model, test_cli, train_cli
from transvae.apis.entry import build_model, load_config
from transvae.engine.config_validation import ConfigKeyError, ConfigValueError

import tiny_vae_fixtures as tv


def test_order_preset_data_root_shortcuts_cfg_options(tmp_path):
    path = tv.write_config(str(tmp_path / 'tiny.py'))  # preset 'quick': max_iters=3
    seen = []

    def shortcuts(cfg: Config) -> None:  # runs after the preset, before --cfg-options
        seen.append(cfg.train_cfg.max_iters)
        cfg.train_cfg.max_iters = 9
    cfg = load_config(path, 'quick', {'train_cfg.val_interval': 3}, shortcuts=shortcuts)
    assert seen == [3] and cfg.train_cfg.max_iters == 9 and cfg.train_cfg.val_interval == 3
    cfg = load_config(path, 'quick', {'train_cfg.max_iters': 11}, shortcuts=shortcuts)
    assert cfg.train_cfg.max_iters == 11  # the most explicit wins
    original = Config.fromfile(path)
    load_config(original, 'quick', {'train_cfg.max_iters': 5})
    assert original.train_cfg.max_iters == 2  # a Config is copied, never changed


def test_every_entry_refuses_the_same_mistakes(tmp_path):
    """A misspelt --cfg-options key, an unknown preset and a bad numeric value: refused by train, test, extraction
    and init_model alike (test and extraction used to merge --cfg-options unchecked)."""
    path = tv.write_config(str(tmp_path / 'tiny.py'))
    with pytest.raises(ConfigKeyError, match="Did you mean 'train_cfg'"):
        load_config(path, cfg_options={'train_cfgg.max_iters': 1})
    with pytest.raises(ConfigKeyError, match="Preset 'gpu'"):
        init_model(path, preset='gpu')
    with pytest.raises(ConfigKeyError, match="Did you mean 'model'"):
        init_model(path, cfg_options={'modell.arch.latent_channels': 4})
    with pytest.raises(ConfigValueError, match='train_dataloader.batch_size'):
        load_config(path, cfg_options={'train_dataloader.batch_size': 0})
    ckpt = str(tmp_path / 'x.pth')
    bad = ['--cfg-options', 'train_cfgg.max_iters=1']
    with pytest.raises(SystemExit, match="error: --cfg-options train_cfgg.max_iters.*Did you mean 'train_cfg'"):
        train_cli.main([path, '--work-dir', str(tmp_path / 'w')] + bad)
    with pytest.raises(SystemExit, match="error: --cfg-options train_cfgg.max_iters.*Did you mean 'train_cfg'"):
        test_cli.main([path, ckpt, '--work-dir', str(tmp_path / 't')] + bad)
    with pytest.raises(SystemExit, match="error: --cfg-options train_cfgg.max_iters.*Did you mean 'train_cfg'"):
        extract_latents_cli.main([path, ckpt, '--out', str(tmp_path / 'lat')] + bad)
    assert not (tmp_path / 'lat').exists()


def test_build_model_is_init_model(tmp_path):
    path = tv.write_config(str(tmp_path / 'tiny.py'))
    torch.manual_seed(0)
    reference = init_model(path)
    ckpt = str(tmp_path / 'm.pth')
    torch.save({'state_dict': reference.state_dict()}, ckpt)
    torch.manual_seed(1)
    built = build_model(load_config(path), ckpt)
    loaded = init_model(path, ckpt)
    assert not built.training and not loaded.training
    for (k, a), (_, b), (_, c) in zip(reference.state_dict().items(), built.state_dict().items(),
                                      loaded.state_dict().items()):
        assert torch.equal(a, b) and torch.equal(a, c), k
    assert build_model(load_config(path), 'none') is not None  # 'none': the weights it builds with


def test_importing_utils_registers_nothing():
    """``import transvae.utils`` imports no model, dataset or engine module (register_all_modules is in apis)."""
    code = ('import sys, transvae.utils, transvae.utils.files; '
            "print(' '.join(m for m in sys.modules if m.startswith('transvae')))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert {m for m in out.split() if m != 'transvae' and not m.startswith('transvae.utils')} == set()


def test_a_pretrained_init_cfg_is_applied_when_evaluating_without_a_checkpoint(tmp_path):
    """A model whose config names its own weights (``init_cfg=dict(type='Pretrained', ...)``) is evaluated with those
    weights by ``build_model`` and ``tools/test.py`` alike: mmengine applies ``init_cfg`` only when training starts,
    so without the explicit ``init_weights`` the report said "pretrained" over random weights."""
    import json
    path = tv.write_config(str(tmp_path / 'tiny.py'))
    torch.manual_seed(0)
    reference = init_model(path)
    with torch.no_grad():  # weights no seeded initialisation reproduces
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = str(tmp_path / 'm.pth')
    torch.save({'state_dict': reference.state_dict()}, ckpt)
    own = tv.write_config(str(tmp_path / 'own.py'),
                          extra=f"\nmodel.update(init_cfg=dict(type='Pretrained', checkpoint={ckpt!r}))\n")
    torch.manual_seed(1)
    built = build_model(load_config(own), None)
    for (k, a), (_, b) in zip(reference.state_dict().items(), built.state_dict().items()):
        assert torch.equal(a, b), k
    reports = []
    for args in ([path, ckpt], [own]):
        out = str(tmp_path / f'r{len(reports)}.json')
        test_cli.main(args + ['--work-dir', str(tmp_path / f't{len(reports)}'), '--out', out])
        with open(out) as f:
            reports.append(json.load(f))
    assert 'pretrained' in json.dumps(reports[1]['weights'])
    metrics = [{k: v for k, v in r['metrics'].items() if isinstance(v, float)} for r in reports]
    assert metrics[0] and metrics[0] == metrics[1]
