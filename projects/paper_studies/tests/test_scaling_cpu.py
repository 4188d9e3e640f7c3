"""Fig. 5 at CPU scale: the family's sizes differ (and are the configs' widths), the plotter's slopes and verdict on
synthetic logs, its refusal to state a trend through equal sizes, and train_all_scales.sh's presets."""
import glob
import json
import math
import os
import os.path as osp
import subprocess

import numpy as np
import pytest
from mmengine.config import Config

from projects.paper_studies.paper_studies import AGREE, DISAGREE
from projects.paper_studies.paper_studies.per_photo import PER_PHOTO
from projects.paper_studies.paper_studies.run import DONE
from projects.paper_studies.paper_studies.scaling import (ScalingRun, TrendRefused, check_sizes_distinct,
                                                          family_slope, log_slope, slope_claim)
from projects.paper_studies.paper_studies.study import EXP_DIR, REPO
from transvae.engine.config_surgery import config_fingerprint
from transvae.utils.complexity import build_encoder_decoder, count_params_meta

FAMILY = osp.join(EXP_DIR, 'scaling_cpu')
#: encoder + decoder parameters of each CPU-scale model (the numbers tools/reproduce/README.md states)
PARAMS = {'transvae_x05': 391311, 'transvae_x1': 1497211, 'transvae_x2': 5851859,
          'cnn_x05': 262803, 'cnn_x1': 1016067, 'cnn_x2': 3994083}
WIDTHS = {'x05': 0.5, 'x1': 1.0, 'x2': 2.0}


def test_cpu_family_sizes_differ_and_are_the_configs_widths():
    names = sorted(osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(FAMILY, '*.py')))
    assert names == sorted(PARAMS)
    for name in names:
        cfg = Config.fromfile(osp.join(FAMILY, name + '.py'))
        enc, dec = count_params_meta(cfg)
        assert enc + dec == PARAMS[name], name
        mult = WIDTHS[name.split('_')[1]]
        arch = cfg.model.arch
        if name.startswith('transvae'):
            assert list(arch.widths) == [int(w * mult) for w in (32, 32, 64, 128)]
        else:
            assert arch.base_channels == int(32 * mult) and list(arch.channel_mults) == [1, 1, 2, 2]
        # the built encoder's widest conv has the config's widest width; GroupNorm(8) divides every norm
        e, _ = build_encoder_decoder(cfg, device='meta')
        norms = [m for m in e.modules() if m.__class__.__name__ == 'GroupNorm']
        assert norms and all(m.num_groups == 8 and m.num_channels % 8 == 0 for m in norms)
        # the main job's recipe: 1250 iterations of batch 16 at 64², held-out photos at 256²
        assert cfg.train_cfg.max_iters == 1250 and cfg.train_dataloader.batch_size == 16
        assert cfg.train_dataloader.dataset.pipeline[1] == dict(type='RandomCrop', size=64)
        assert cfg.val_dataloader.dataset.split == 'val' and cfg.val_dataloader.dataset.pipeline[-2]['size'] == 256
    for fam in ('transvae', 'cnn'):
        p = [PARAMS[f'{fam}_{w}'] for w in ('x05', 'x1', 'x2')]
        assert p[0] < p[1] < p[2] and all(3.0 < b / a < 4.2 for a, b in zip(p, p[1:]))  # ~ width²
    # x1 TransVAE is the main job itself (the recipe file copies its settings)
    main_job = osp.join(REPO, 'configs', 'transvae', 'transvae-micro_f8d16_1xb16-10min_photos.py')
    main = config_fingerprint(Config.fromfile(main_job))
    assert config_fingerprint(Config.fromfile(osp.join(FAMILY, 'transvae_x1.py'))) == main


def _runs(params: dict, value, seeds=(0, 1), photos=4) -> list:
    """ScalingRuns whose per-photo claim metric is ``value(family, params, seed, photo)``; finals are the means."""
    out = []
    for name, n in params.items():
        fam = name.split('_')[0]
        for s in seeds:
            pp = {f'src{i}/p{i}.png': {'vgg/rec_loss': value(fam, n, s, i)} for i in range(photos)}
            mean = sum(v['vgg/rec_loss'] for v in pp.values()) / photos
            out.append(ScalingRun(fam, name, s, float(n), float(n) * 1e4, 1250, {'vgg/rec_loss': mean, 'psnr': 20.0,
                                  'lpips': 0.3}, dict(iteration=1250, photos=pp)))
    return out


def test_slopes_and_the_claim_on_synthetic_values():
    assert log_slope([1e5, 1e6, 1e7], [0.9, 0.8, 0.7]) == pytest.approx(-0.1)
    offs = np.array([-0.02, 0.0, 0.01, 0.015])

    def value(fam, n, s, i):  # TransVAE gains 0.08 per decade, the CNN 0.03; photos and seeds shift both alike
        return 0.9 - (0.08 if fam == 'transvae' else 0.03) * math.log10(n / 1e5) + offs[i] + 0.01 * s

    runs = _runs(PARAMS, value)
    assert family_slope(runs, 'transvae', 'vgg/rec_loss') == pytest.approx(-0.08)
    assert family_slope(runs, 'cnn', 'vgg/rec_loss') == pytest.approx(-0.03)
    j = slope_claim(runs)
    assert j.verdict == AGREE and j.interval.mean == pytest.approx(-0.05) and j.interval.n_photos == 4
    assert j.interval.lo == pytest.approx(-0.05) and j.interval.hi == pytest.approx(-0.05)  # the same on every photo
    assert slope_claim(runs, 'cnn', 'transvae').verdict == DISAGREE
    runs_no_pp = [ScalingRun(r.family, r.name, r.seed, r.params, r.train_flops, r.step, r.final, None) for r in runs]
    assert slope_claim(runs_no_pp).detail.startswith('no per-photo data')


def test_no_trend_through_equal_sizes():
    same = {'transvae_tiny': 1.6e6, 'transvae_base': 1.6e6, 'transvae_large': 1.6e6}
    runs = _runs(same, lambda fam, n, s, i: 0.8 - 0.01 * i)
    with pytest.raises(TrendRefused, match='do not differ in size'):
        check_sizes_distinct(runs, 'transvae')
    with pytest.raises(TrendRefused):
        family_slope(runs, 'transvae', 'vgg/rec_loss')
    with pytest.raises(TrendRefused):
        log_slope([1e6, 1e6], [0.1, 0.2])


def _fake_work_dir(root, name, seed, config, rec_loss, photo_offsets):
    wd = osp.join(root, name, f'seed_{seed}')
    os.makedirs(osp.join(wd, '20260101_000000', 'vis_data'))
    with open(osp.join(wd, name + '.py'), 'w') as f:  # the run's dumped config (Config.dump is slow: a base)
        f.write(f'_base_ = [{config!r}]\n')
    with open(osp.join(wd, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
        f.write(json.dumps({'lr': 1e-4, 'loss_nll': 1.0, 'time': 0.5, 'step': 250}) + '\n')
        f.write(json.dumps({'vgg/rec_l1': rec_loss / 2, 'vgg/rec_lpips': rec_loss / 2, 'psnr': 20 - rec_loss,
                            'lpips': rec_loss / 3, 'step': 250}) + '\n')
    with open(osp.join(wd, DONE), 'w') as f:
        json.dump(dict(max_iters=250), f)
    photos = {f'src{i}/p{i}.png': {'vgg/rec_loss': rec_loss + o} for i, o in enumerate(photo_offsets)}
    with open(osp.join(wd, PER_PHOTO), 'w') as f:
        json.dump(dict(iteration=250, photos=photos), f)


def test_plotter_refuses_a_trend_when_the_preset_made_the_sizes_equal(tmp_path, capsys):
    """The paper-scale names trained under a collapsing preset (every size the same micro model, as the old
    --preset cpu did): the tool says so and states neither slopes nor a verdict; distinct sizes get both."""
    from tools.reproduce.plot_scaling_curves import main
    root = str(tmp_path / 'collapsed')
    offs = [-0.01, 0.0, 0.02]
    for fam, cfg in (('transvae', 'transvae_x1'), ('cnn', 'cnn_x1')):
        for k, size in enumerate(('tiny', 'base', 'large')):
            _fake_work_dir(root, f'{fam}_{size}', 0, osp.join(FAMILY, cfg + '.py'), 0.8 - 0.05 * k, offs)
    assert main(['--root', root, '--no-flops', '--out', str(tmp_path / 'fig.png')]) == 0
    md = open(osp.join(root, 'scaling.md')).read()
    assert '**transvae: no trend.**' in md and '**cnn: no trend.**' in md and 'do not differ in size' in md
    assert 'slope per decade' not in md and 'no verdict' in md and osp.getsize(tmp_path / 'fig.png') > 1000
    # the CPU-scale family: distinct sizes, slopes from the (fake) logs, the verdict from the per-photo slopes
    root = str(tmp_path / 'cpu')
    for name, n in PARAMS.items():
        gain = 0.08 if name.startswith('transvae') else 0.03
        for seed in (0, 1):
            _fake_work_dir(root, name, seed, osp.join(FAMILY, name + '.py'),
                           0.9 - gain * math.log10(n / 1e5) + 0.01 * seed, offs)
    assert main(['--root', root, '--no-flops']) == 0
    md = open(osp.join(root, 'scaling.md')).read()
    assert 'transvae: slope per decade of parameters (seed means): vgg/rec_loss -0.0800' in md
    assert 'cnn: slope per decade of parameters (seed means): vgg/rec_loss -0.0300' in md
    assert '**-0.0500 [-0.0500, -0.0500] -> agree**' in md
    assert '| transvae_x2 | 5.852 |' in md and osp.getsize(osp.join(root, 'scaling.png')) > 1000
    assert main(['--root', str(tmp_path / 'nothing')]) == 2
    assert 'error: no such work root' in capsys.readouterr().err


def test_train_all_scales_presets(tmp_path):
    script = osp.join(REPO, 'tools', 'reproduce', 'train_all_scales.sh')
    env = dict(os.environ, ROOT=str(tmp_path))
    bad = subprocess.run(['bash', script, '--preset', 'micro'], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--preset must be 'cpu'" in bad.stderr
    none = subprocess.run(['bash', script, '--preset', 'cpu'], capture_output=True, text=True,
                          env=dict(env, FILTER='nope_*'))
    assert none.returncode == 2 and 'configs/experiments/scaling_cpu/nope_*.py' in none.stderr


def test_the_claim_per_pair_of_consecutive_sizes():
    """plot_scaling_curves.segment_lines: with three sizes the claim is also judged on each consecutive pair, so a
    change of direction (here the CNN gains more from x0.5 to x1, TransVAE more from x1 to x2) is shown, not averaged
    away by one slope over all sizes."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('plot_scaling_curves',
                                                  osp.join(REPO, 'tools/reproduce/plot_scaling_curves.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    sizes = {'transvae_x05': 1e5, 'transvae_x1': 1e6, 'transvae_x2': 1e7, 'cnn_x05': 1e5, 'cnn_x1': 1e6,
             'cnn_x2': 1e7}
    gain = {('transvae', 1e6): 0.05, ('transvae', 1e7): 0.15, ('cnn', 1e6): 0.10, ('cnn', 1e7): 0.12}
    offs = np.array([-0.02, 0.0, 0.01, 0.015])
    runs = _runs(sizes, lambda fam, n, s, i: 0.9 - gain.get((fam, n), 0.0) + offs[i] + 0.01 * s)
    lines = tool.segment_lines(runs, {})
    assert [ln.split(' (')[0].strip() for ln in lines[1:]] == ['- x05 -> x1', '- x1 -> x2']
    assert lines[1].endswith('-> disagree**') and lines[2].endswith('-> agree**'), lines
    two_sizes = [r for r in runs if not r.name.endswith('x2')]
    assert tool.segment_lines(two_sizes, {}) == []  # the overall claim is already the one pair
