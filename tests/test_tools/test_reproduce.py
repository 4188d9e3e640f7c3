"""transvae.studies (behind tools/reproduce): seeds and resume, log parsing, claim verdicts, reports, plots."""
import json
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch

from transvae.studies import AGREE, DISAGREE, MISSING, NOT_RESOLVED, Claim, Study, Variant, judge_claim, seed_stats
from transvae.studies import logs, run
from transvae.studies.report import report_study

# shrink the CPU preset further: 2 val photos, batch 2
SHRINK = ['val_dataloader.dataset.max_images=2', 'val_dataloader.batch_size=2', 'default_hooks.logger.interval=1']


def _write_scalars(wd, stamp, rows):
    d = osp.join(wd, stamp, 'vis_data')
    os.makedirs(d, exist_ok=True)
    with open(osp.join(d, 'scalars.json'), 'w') as f:
        for r in rows:
            f.write(json.dumps(r) + '\n')


def _stats(**per_variant):
    return {k: seed_stats(v) for k, v in per_variant.items()}


# ---------------------------------------------------------------------------------------------------------------------
def test_verdict_against_seed_spread():
    # a clearly lower than b, beyond both spreads: agree; the reverse claim: disagree
    s = _stats(a=[0.30, 0.31], b=[0.40, 0.42])
    j = judge_claim(Claim('a', '<', 'b'), s)
    assert j.verdict == AGREE and j.diff == pytest.approx(-0.105) and j.spread == pytest.approx(0.02)
    assert j.margin == pytest.approx(0.105)
    assert judge_claim(Claim('a', '>', 'b'), s).verdict == DISAGREE
    # a difference inside the seed spread is not resolved, in either direction
    s = _stats(a=[0.30, 0.36], b=[0.33, 0.34])
    assert judge_claim(Claim('a', '<', 'b'), s).verdict == NOT_RESOLVED
    assert judge_claim(Claim('b', '<', 'a'), s).verdict == NOT_RESOLVED
    # one seed: no spread, never better than not resolved
    s = _stats(a=[0.30], b=[0.40, 0.41])
    assert judge_claim(Claim('a', '<', 'b'), s).verdict == NOT_RESOLVED
    # '≪' needs more than 25% of b beyond the spread
    s = _stats(a=[0.20, 0.21], b=[0.40, 0.41])
    assert judge_claim(Claim('a', '≪', 'b'), s).verdict == AGREE
    s = _stats(a=[0.36, 0.37], b=[0.40, 0.41])
    assert judge_claim(Claim('a', '≪', 'b'), s).verdict == DISAGREE  # lower, but by ~10% only
    # '≈': within 3% agrees, far outside (beyond the spread) disagrees, in between not resolved
    assert judge_claim(Claim('a', '≈', 'b'), _stats(a=[0.400, 0.402], b=[0.405, 0.407])).verdict == AGREE
    assert judge_claim(Claim('a', '≈', 'b'), _stats(a=[0.30, 0.31], b=[0.40, 0.41])).verdict == DISAGREE
    assert judge_claim(Claim('a', '≈', 'b'), _stats(a=[0.37, 0.40], b=[0.41, 0.42])).verdict == NOT_RESOLVED
    assert judge_claim(Claim('a', '<', 'c'), s).verdict == MISSING
    with pytest.raises(ValueError):
        Claim('a', '<=', 'b')


def test_seed_stats_and_log_parsing(tmp_path):
    st = seed_stats([1.0, 3.0, float('nan'), None])
    assert st.n == 2 and st.mean == 2.0 and st.spread == 2.0 and math.isnan(seed_stats([1.0]).spread)
    wd = str(tmp_path / 'v' / 'seed_0')
    # a first run, then a resumed one that re-logs step 20; val keys carry a dataset prefix and rec-loss terms
    _write_scalars(wd, '20260101_000000', [
        {'lr': 1e-4, 'loss': 3.0, 'time': 0.5, 'step': 10},
        {'tiny/psnr': 12.0, 'vgg/rec_l1': 0.3, 'vgg/rec_lpips': 0.5, 'vgg/rec_loss': 0.77, 'step': 10},
        {'lr': 1e-4, 'loss': 2.0, 'time': 0.5, 'step': 20}, {'tiny/psnr': 13.0, 'step': 20}])
    _write_scalars(wd, '20260101_010000', [
        {'lr': 1e-4, 'loss': 2.0, 'time': 1.0, 'step': 30}, {'tiny/psnr': 14.0, 'step': 20},
        {'tiny/psnr': 15.0, 'step': 30}])
    val, train = logs.read_scalars(wd)
    assert [r['step'] for r in val] == [10, 20, 30] and [r['psnr'] for r in val] == [12.0, 14.0, 15.0]
    assert val[0]['vgg/rec_loss'] == pytest.approx(0.8)  # recomputed from its terms (a smoothed value is ignored)
    cum = logs.train_seconds(train)
    assert cum == [(10, 5.0), (20, 10.0), (30, 20.0)] and logs.seconds_at(25, cum) == pytest.approx(15.0)
    assert logs.canonical('val/tiny/psnr') == 'psnr' and logs.canonical('alex/rec_loss') == 'alex/rec_loss'


def test_report_and_plots_synthetic(tmp_path):
    root = str(tmp_path)
    for label, seed, base in (('a', 0, 0.30), ('a', 1, 0.31), ('b', 0, 0.40), ('b', 1, 0.42), ('c', 0, 0.5)):
        wd = run.work_dir_of(root, label, seed)
        _write_scalars(wd, '20260101_000000', [
            {'lr': 1e-4, 'loss': 1.0, 'time': 0.4, 'step': 10},
            {'psnr': 20 - 10 * base, 'lpips': base, 'vgg/rec_l1': base / 2, 'vgg/rec_lpips': base / 2, 'step': 10}])
        if label != 'c':  # c is still running
            with open(osp.join(wd, run.DONE), 'w') as f:
                json.dump(dict(max_iters=10, wall_s=4.0), f)
    study = Study('syn', 'Fig. X', [Variant('a', 'cnn_vae', 0.18), Variant('b', 'stage_multi', 0.3),
                                    Variant('c', 'cnn_vae')], expected_order=['a', 'b'],
                  claims=[Claim('a', '<', 'b'), Claim('a', '≈', 'b'), Claim('c', '<', 'a')])
    md = report_study(study, root)
    assert '| a < b | 0.3050 vs 0.4100' in md and md.count('**agree**') == 1 and md.count('**disagree**') == 1
    assert '| c < a |' in md and '**missing**' in md  # c has no finished seed
    assert 'Intermediate (runs unfinished' in md and '| c < a | 10 | 0.5000 vs 0.3050' in md  # progress view
    assert '(s0: 10, s1: 10)' in md
    assert '0.3050 ± 0.0050' in md and 'Measured ordering** (best first): a (0.3050) < b (0.4100)' in md
    assert osp.getsize(osp.join(root, 'curves.png')) > 1000
    rows = open(osp.join(root, 'results.csv')).read().splitlines()
    assert len(rows) == 6 and rows[1].startswith('a,cnn_vae,0.18,0,True,10')
    from transvae.studies.plots import epoch_means, plot_epoch_curves, plot_time_to_quality
    runs = logs.collect(study.variants, root)
    assert osp.getsize(plot_time_to_quality(study, runs, osp.join(root, 'ttq.png'))) > 1000
    rows = [{'step': s, 'loss_nll': float(s)} for s in (5, 10, 15, 20)]
    assert epoch_means(rows, 10, 'loss_nll') == [(1, 7.5), (2, 17.5)]
    out = plot_epoch_curves({'cnn_tiny': dict(rows=rows, ipe=10)}, osp.join(root, 'ep.png'))
    assert osp.getsize(out) > 1000


def test_overlay_and_command(tmp_path):
    from mmengine.config import Config
    v = Variant('x', 'cnn_vae', hooks=[dict(type='ReconstructionGridHook', interval=0, at_iters=[2])],
                model_from='configs/_base_/models/cnn-vae-micro_f8d16.py', cfg_options=['model.arch.num_res_blocks=2'])
    cfg = Config.fromfile(run.write_overlay(v, str(tmp_path)))
    rec = [(e['type'], e.get('net'), e.get('prefix')) for e in cfg.val_evaluator]
    assert ('ReconstructionLossMetric', 'vgg', 'vgg') in rec and ('ReconstructionLossMetric', 'alex', 'alex') in rec
    assert 'PSNRMetric' in [e['type'] for e in cfg.val_evaluator]
    assert cfg.default_hooks.logger.log_metric_by_epoch is False and cfg.default_hooks.logger.interval == 10
    assert cfg.custom_hooks[-1]['type'] == 'ReconstructionGridHook'
    assert cfg.model.arch.channel_mults == [1, 1, 2, 2] and 'model_presets' in cfg
    opts = run.RunOptions(seeds=(3,), max_iters=5, batch_size=4, val_interval=5)
    cmd = run.train_command('c.py', 'wd', 3, opts, v)
    assert cmd[1].endswith('tools/train.py') and cmd[cmd.index('--seed') + 1] == '3'
    assert cmd[cmd.index('--resume') + 1] == 'auto' and cmd[cmd.index('--batch-size') + 1] == '4'
    assert cmd[-2:] == ['train_cfg.val_interval=5', 'model.arch.num_res_blocks=2']
    opts.gpus = 4
    assert run.train_command('c.py', 'wd', 0, opts)[:2] == ['bash', osp.join(run.REPO, 'tools', 'dist_train.sh')]


def test_driver_seeds_skip_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    root = str(tmp_path / 'st')
    study = Study('tiny', 'Fig. test', [Variant('cnn', 'cnn_vae', 0.183)])
    opts = run.RunOptions(seeds=(0, 1), max_iters=2, batch_size=2, val_interval=2, cfg_options=SHRINK)
    run.run_study(study, root, opts)
    finals = []
    for seed in (0, 1):
        wd = run.work_dir_of(root, 'cnn', seed)
        assert run.is_done(wd, 2) and not run.is_done(wd, 3)
        val, _ = logs.read_scalars(wd)
        assert [r['step'] for r in val] == [2]
        assert {'vgg/rec_loss', 'alex/rec_loss', 'psnr', 'lpips'} <= set(val[0])
        finals.append(val[0]['vgg/rec_loss'])
    assert finals[0] != finals[1]  # the seeds differ
    md = report_study(study, root)
    assert '[0, 1] of [0, 1]' in md and '±' in md

    def boom(*a, **k):
        raise AssertionError('a finished run was retrained')

    monkeypatch.setattr(run.subprocess, 'Popen', boom)
    run.run_study(study, root, opts)  # everything done: no subprocess
    monkeypatch.undo()
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    # a larger max_iters continues seed 0 from its checkpoint
    opts3 = run.RunOptions(seeds=(0,), max_iters=3, batch_size=2, val_interval=3, cfg_options=SHRINK)
    assert run.run_variant(study.variants[0], 0, root, opts3)['max_iters'] == 3
    val, train = logs.read_scalars(run.work_dir_of(root, 'cnn', 0))
    assert [r['step'] for r in val] == [2, 3] and [r['step'] for r in train][-1] == 3


def test_photo_crops_use_dataset_transforms(tmp_path):
    from PIL import Image

    from transvae.studies.photos import load_photo, resolve_checkpoint
    p = tmp_path / 'img.png'
    arr = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(arr).save(p)
    x, up = load_photo(str(p), 32)
    assert x.shape == (3, 32, 32) and not up
    assert torch.equal((x * 255).round().byte().permute(1, 2, 0), torch.from_numpy(arr[4:36, 14:46]))  # centre
    x, up = load_photo(str(p), 64)
    assert x.shape == (3, 64, 64) and up
    wd = tmp_path / 'wd'
    wd.mkdir()
    for name in ('iter_5.pth', 'iter_10.pth', 'x.py'):
        (wd / name).write_bytes(b'')
    assert resolve_checkpoint(str(wd)) == (str(wd / 'x.py'), str(wd / 'iter_10.pth'))
    assert resolve_checkpoint(str(wd), step=5)[1] == str(wd / 'iter_5.pth')
    with pytest.raises(FileNotFoundError):
        resolve_checkpoint(str(wd), step=7)


def test_rec_loss_metric_fake_batches():
    from transvae.evaluation.functional.image_quality import lpips
    from transvae.evaluation.metrics import ReconstructionLossMetric
    from transvae.registry import METRICS
    m = METRICS.build(dict(type='ReconstructionLossMetric'))
    assert isinstance(m, ReconstructionLossMetric)
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(4, 3, 32, 32, generator=g)
    pred = (gt + 0.1 * torch.randn(4, 3, 32, 32, generator=g)).clamp(0, 1)
    # two batches; the first has an exact reconstruction (loss 0)
    m.process(None, [dict(pred_img=gt[0], gt_img=gt[0]), dict(pred_img=pred[1], gt_img=gt[1])])
    m.process(None, [dict(pred_img=pred[2], gt_img=gt[2]), dict(pred_img=pred[3], gt_img=gt[3])])
    out = m.evaluate(4)
    assert set(out) == {'rec_loss', 'rec_l1', 'rec_lpips'}
    l1 = torch.stack([(pred[i] - gt[i]).abs().mean() * 2 for i in (1, 2, 3)]).sum() / 4  # [-1, 1] scale
    lp = lpips(pred[1:], gt[1:], quantize=False).double().sum() / 4
    assert out['rec_l1'] == pytest.approx(float(l1), rel=1e-5)
    assert out['rec_lpips'] == pytest.approx(float(lp), rel=1e-4, abs=1e-6)
    assert out['rec_loss'] == pytest.approx(out['rec_l1'] + out['rec_lpips'], rel=1e-9)
    # identical images: zero loss; uint8 inputs accepted
    m2 = ReconstructionLossMetric(lpips_weight=0.5)
    u = (gt[0] * 255).round().to(torch.uint8)
    m2.process(None, [dict(pred_img=u, gt_img=u)])
    assert m2.evaluate(1)['rec_loss'] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        ReconstructionLossMetric(net='squeeze')


def test_busy_work_dir_is_not_trained_twice(tmp_path, monkeypatch):
    import fcntl
    root = str(tmp_path)
    v = Variant('cnn', 'cnn_vae')
    wd = run.work_dir_of(root, 'cnn', 0)
    os.makedirs(wd)
    monkeypatch.setattr(run.subprocess, 'Popen', lambda *a, **k: (_ for _ in ()).throw(AssertionError('trained')))
    with open(osp.join(wd, 'driver.lock'), 'a+') as f:  # another driver holds it
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        with pytest.raises(run.BusyError):
            run.run_variant(v, 0, root, run.RunOptions(max_iters=2))
        run.run_study(Study('s', 'F', [v]), root, run.RunOptions(seeds=(0,), max_iters=2))  # skipped, no error
