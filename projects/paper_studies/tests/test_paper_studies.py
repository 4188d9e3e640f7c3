"""projects/paper_studies (behind tools/reproduce): seeds and resume, log parsing, claim verdicts, reports, plots."""
import json
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch

from projects.paper_studies.paper_studies import (AGREE, DISAGREE, MISSING, NOT_RESOLVED, Claim, Study, Variant,
                                                  judge_claim, seed_stats)
from projects.paper_studies.paper_studies import logs, run
from projects.paper_studies.paper_studies.per_photo import PER_PHOTO, read_per_photo
from projects.paper_studies.paper_studies.report import report_study

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
            photos = {f'src{i}/p{i}.png': {'vgg/rec_loss': base + 0.01 * (i - 1.5)} for i in range(4)}
            with open(osp.join(wd, PER_PHOTO), 'w') as f:  # photo values average to the logged one
                json.dump(dict(iteration=10, photos=photos), f)
    os.makedirs(run.work_dir_of(root, 'c', 1))  # started, killed before its first validation: left out
    _write_scalars(run.work_dir_of(root, 'a', 0) + '.old', '20260101_000000', [{'psnr': 1.0, 'step': 10}])  # moved aside
    study = Study('syn', 'Fig. X', [Variant('a', 'cnn_vae', 0.18), Variant('b', 'stage_multi', 0.3),
                                    Variant('c', 'cnn_vae')], expected_order=['a', 'b'],
                  claims=[Claim('a', '<', 'b'), Claim('a', '≈', 'b'), Claim('c', '<', 'a')])
    md = report_study(study, root)
    assert '| a < b | 0.3050 vs 0.4100' in md and md.count('**agree**') == 1 and md.count('**disagree**') == 1
    assert '| c < a |' in md and '**missing**' in md  # c has no finished seed
    # the interval column beside the seed-spread one: a - b = -0.10 / -0.11 on every photo of seed 0 / 1
    row = next(line for line in md.splitlines() if line.startswith('| a < b |'))
    assert row.endswith('| -0.1050 [-0.1100, -0.1000] -> agree (2 seeds x 4 photos) |')
    row = next(line for line in md.splitlines() if line.startswith('| a ≈ b |'))
    assert '-> disagree (2 seeds' in row
    row = next(line for line in md.splitlines() if line.startswith('| c < a |'))
    assert row.endswith('| no per-photo data |')
    assert 'Paired bootstrap: 1 agree, 1 disagree, 1 missing.' in md
    assert 'Intermediate (runs unfinished' in md and '| c < a | 10 | 0.5000 vs 0.3050' in md  # progress view
    assert '(s0: 10, s1: 10)' in md
    assert '0.3050 ± 0.0050' in md and 'Measured ordering** (best first): a (0.3050) < b (0.4100)' in md
    assert osp.getsize(osp.join(root, 'curves.png')) > 1000
    rows = open(osp.join(root, 'results.csv')).read().splitlines()
    assert len(rows) == 6 and rows[1].startswith('a,cnn_vae,0.18,0,True,10')
    from projects.paper_studies.paper_studies.plots import epoch_means, plot_epoch_curves, plot_time_to_quality
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
    # each held-out photo's metrics at the end: their mean is the logged final validation value
    wd0 = run.work_dir_of(root, 'cnn', 0)
    pp = read_per_photo(wd0)
    assert pp['iteration'] == 2 and pp['checkpoint'] == 'iter_2.pth' and len(pp['photos']) == 2
    val, _ = logs.read_scalars(wd0)
    for key in ('vgg/rec_loss', 'alex/rec_loss', 'psnr', 'ssim', 'lpips'):
        vals = [m[key] for m in pp['photos'].values()]
        # rel 2e-5: the child trains and validates on 1 thread, this process evaluates on its own count (SSIM rounds)
        assert len(set(vals)) == 2 and sum(vals) / 2 == pytest.approx(val[-1][key], rel=2e-5), key
    assert all('/' in k and k.endswith('.png') for k in pp['photos'])
    md = report_study(study, root)
    assert '[0, 1] of [0, 1]' in md and '±' in md

    def boom(*a, **k):
        raise AssertionError('a finished run was retrained')

    monkeypatch.setattr(run.subprocess, 'Popen', boom)
    os.remove(osp.join(wd0, PER_PHOTO))  # a run finished before per-photo files: re-evaluated, not retrained
    run.run_study(study, root, opts)  # everything done: no subprocess
    assert read_per_photo(wd0)['photos'] == pp['photos']
    monkeypatch.undo()
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    # a larger max_iters continues seed 0 from its checkpoint, and its per-photo file follows
    opts3 = run.RunOptions(seeds=(0,), max_iters=3, batch_size=2, val_interval=3, cfg_options=SHRINK)
    assert run.run_variant(study.variants[0], 0, root, opts3)['max_iters'] == 3
    val, train = logs.read_scalars(run.work_dir_of(root, 'cnn', 0))
    assert [r['step'] for r in val] == [2, 3] and [r['step'] for r in train][-1] == 3
    assert read_per_photo(wd0)['iteration'] == 3


def test_photo_crops_use_dataset_transforms(tmp_path):
    from PIL import Image

    from projects.paper_studies.paper_studies.photos import load_photo, resolve_checkpoint
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


def test_a_finished_run_of_another_config_is_refused_not_reported(tmp_path, monkeypatch):
    """Changing a config (or its preset) after a study ran must not let the driver skip the old run as done."""
    root = str(tmp_path)
    monkeypatch.setattr(run.subprocess, 'Popen', lambda *a, **k: (_ for _ in ()).throw(AssertionError('trained')))
    old, new = Variant('cnn', 'cnn_vae'), Variant('cnn', 'cnn_vae', cfg_options=['model.arch.num_res_blocks=2'])
    opts = run.RunOptions(max_iters=2)
    wd = run.work_dir_of(root, 'cnn', 0)
    os.makedirs(wd)
    with open(osp.join(wd, run.DONE), 'w') as f:  # a finished run from before fingerprints: accepted as it is
        json.dump(dict(label='cnn', seed=0, max_iters=2), f)
    assert run.run_variant(new, 0, root, opts)['label'] == 'cnn' and not osp.exists(osp.join(wd, run.FINGERPRINT))
    with open(osp.join(wd, run.FINGERPRINT), 'w') as f:  # ... and one that recorded its config
        json.dump(run.run_fingerprint(run.write_overlay(old, root), 0, opts, old), f)
    assert run.run_variant(old, 0, root, run.RunOptions(max_iters=2, val_interval=1))['max_iters'] == 2
    with pytest.raises(run.StaleRunError, match=r'changed: _cli\)'):
        run.run_variant(new, 0, root, opts)
    fp = run.run_fingerprint(run.write_overlay(old, root), 0, run.RunOptions(preset=None), old)
    with pytest.raises(run.StaleRunError, match=r'changed: .*model'):  # the preset changes the resolved model
        run.check_fingerprint(wd, fp)
    with pytest.raises(RuntimeError, match='1 run'):  # the study reports it with the failures, after the others
        run.run_study(Study('s', 'F', [new]), root, run.RunOptions(seeds=(0,), max_iters=2))


# ---------------------------------------------------------------------------------------------------------------------
# time to quality: s/it measured interleaved, quality at k x s/it
def test_step_times_of_the_time_to_quality_variants(tmp_path):
    """The real micro TransVAE and CNN-VAE configs as the driver trains them, at batch 2: both steps time, the ratio
    is the ratio of the medians, the parameter counts are the ones the docs state, and a step trains the model."""
    from projects.paper_studies.paper_studies.paper import TIME_TO_QUALITY
    from projects.paper_studies.paper_studies.speed import (STEP_TIMES, StepTimes, build_train_step, measure_step_times,
                                                            variant_config)
    opts = run.RunOptions(seeds=(0,), preset=None, batch_size=2, cfg_options=['optim_wrapper.optimizer.lr=1e-2'])
    st = measure_step_times(TIME_TO_QUALITY, str(tmp_path), opts, repeats=2, warmup=1, threads=1)
    assert set(st.seconds) == {'transvae_micro', 'cnn_micro'} and all(len(v) == 2 for v in st.seconds.values())
    assert all(t > 0 for v in st.seconds.values() for t in v)
    med = st.medians()
    assert med['transvae_micro'] == pytest.approx(sum(st.seconds['transvae_micro']) / 2)  # median of two
    assert st.ratio('transvae_micro', 'cnn_micro') == pytest.approx(med['transvae_micro'] / med['cnn_micro'])
    assert len(st.pair_ratios('transvae_micro', 'cnn_micro')) == 2
    assert (st.batch_size, st.resolution, st.threads) == (2, 64, 1)
    assert st.other_cores is None or 0 <= st.other_cores <= (os.cpu_count() or 1)
    assert st.params_M['transvae_micro'] == pytest.approx(1.50, abs=0.01)
    assert st.params_M['cnn_micro'] == pytest.approx(1.39, abs=0.01)  # num_res_blocks=2 applied from the variant
    back = StepTimes.load(st.save(str(tmp_path / STEP_TIMES)))
    assert back.medians() == med and 'ratio transvae_micro / cnn_micro' in back.summary()
    with pytest.raises(KeyError):
        st.median('nope')
    with pytest.raises(ValueError):
        measure_step_times(TIME_TO_QUALITY, str(tmp_path), opts, repeats=0)
    # the step is the runner's train step: it returns the losses and moves the weights (lr from --cfg-options)
    cfg = variant_config(TIME_TO_QUALITY.variants[1], str(tmp_path), opts)
    assert cfg.train_dataloader.batch_size == 2 and cfg.model.arch.num_res_blocks == 2
    assert cfg.optim_wrapper.optimizer.lr == 1e-2 and cfg.train_cfg.max_iters == 1250
    step, info = build_train_step(cfg)
    w = info['model'].decoder.conv_out.weight
    before = w.detach().clone()
    log = step()
    assert {'loss', 'loss_nll', 'loss_kl'} <= set(log) and math.isfinite(float(log['loss'].detach()))
    assert not torch.equal(before, w.detach()) and info['optim_wrapper'].optimizer.state[w]['step'] == 1


def _ttq_runs(root):
    """Two variants x two seeds: validation every 10 steps up to 40; 'slow' logged 1 s/it, 'fast' 0.5 s/it."""
    for label, seed, t, q0 in (('fast', 0, 0.5, 10.0), ('fast', 1, 0.5, 11.0), ('slow', 0, 1.0, 12.0),
                               ('slow', 1, 1.0, 12.0)):
        wd = run.work_dir_of(root, label, seed)
        rows = []
        for s in (10, 20, 30, 40):
            rows.append({'lr': 1e-4, 'loss': 1.0, 'time': t, 'step': s})
            rows.append({'psnr': q0 + s / 10, 'lpips': 1 - s / 100, 'step': s})
        _write_scalars(wd, '20260101_000000', rows)
        with open(osp.join(wd, run.DONE), 'w') as f:
            json.dump(dict(max_iters=40, loadavg_end=[3.0, 4.0, 5.5]), f)


def test_time_axis_is_iterations_times_measured_step_time(tmp_path, monkeypatch):
    from projects.paper_studies.paper_studies import plots
    from projects.paper_studies.paper_studies.speed import (StepTimes, equal_time, quality_vs_time,
                                                            time_to_quality_markdown, time_to_reach, value_at_step)
    root = str(tmp_path)
    _ttq_runs(root)
    study = Study('ttq', 'F', [Variant('fast', 'cnn_vae'), Variant('slow', 'cnn_vae')])
    runs = logs.collect(study.variants, root)
    val = runs['fast'][0]['val']
    assert quality_vs_time(val, 'psnr', 2.0) == [(20.0, 11.0), (40.0, 12.0), (60.0, 13.0), (80.0, 14.0)]
    assert value_at_step(val, 'psnr', 25) == pytest.approx(12.5) and math.isnan(value_at_step(val, 'psnr', 45))
    # measured: fast 1 s/it, slow 4 s/it (the logged times say 0.5 and 1.0: they are not used on the time axis)
    sec = {'fast': 1.0, 'slow': 4.0}
    horizon, at = equal_time(runs, sec, 'psnr')
    assert horizon == 40.0  # the fast variant's 40 iterations; the slow one has done 10 by then
    assert at['fast']['iters'] == 40 and at['fast']['values'] == [14.0, 15.0]
    assert at['slow']['iters'] == 10 and at['slow']['values'] == [13.0, 13.0]
    figs = []
    monkeypatch.setattr(plots, '_save', lambda fig, out: figs.append(fig) or out)
    plots.plot_time_to_quality(study, runs, str(tmp_path / 'a.png'), sec)
    top, bottom = figs[0].axes[0], figs[0].axes[2]  # PSNR vs k x s/it; PSNR vs logged wall-clock
    xs = {ln.get_label(): list(ln.get_xdata()) for ln in top.lines}
    assert xs['slow s0 (4.000 s/it)'] == pytest.approx([4 * k / 60 for k in (10, 20, 30, 40)])
    assert xs['fast s1 (1.000 s/it)'] == pytest.approx([k / 60 for k in (10, 20, 30, 40)])
    logged = {ln.get_label(): list(ln.get_xdata()) for ln in bottom.lines}
    assert logged['slow s0 (load 5.5)'] == pytest.approx([1.0 * k / 60 for k in (10, 20, 30, 40)])
    monkeypatch.undo()
    assert osp.getsize(plots.plot_time_to_quality(study, runs, str(tmp_path / 'b.png'), sec)) > 1000
    st = StepTimes(seconds={'fast': [1.0, 1.1, 0.9], 'slow': [4.0, 4.2, 3.8]}, params_M={'fast': 1.5, 'slow': 1.4},
                   batch_size=16, resolution=64, threads=1)
    md = time_to_quality_markdown(study, runs, st)
    assert '| slow | 1.400M | 4.0000 | 3.8000 - 4.2000 | 4.000 |' in md
    assert '| psnr | 0.67 | 40, 14.5000 (14.0000, 15.0000) | 10, 13.0000 (13.0000, 13.0000) |' in md
    assert '| slow s1 | 40 | 16.0000 | 0.6000 |' in md and '| 1.000 | [3.0, 4.0, 5.5] |' in md
    # time to reach the worse final value (fast: mean psnr 14.5 at its step 40; slow passes it at step 25 of 4 s)
    assert '| psnr | 14.5000 (fast) | 0.67 | 1.67 |' in md
    assert time_to_reach(runs['slow'], 'psnr', 12.0, 4.0, False) == (40.0, True)  # at the first validation
    assert time_to_reach(runs['slow'], 'lpips', 0.75, 4.0, True) == (pytest.approx(100.0), False)
    assert math.isnan(time_to_reach(runs['slow'], 'psnr', 99.0, 4.0, False)[0])


def test_time_to_quality_tool_reports_from_a_stored_measurement(tmp_path, capsys):
    from projects.paper_studies.paper_studies.cli import time_to_quality_main, time_to_quality_parser
    from projects.paper_studies.paper_studies.paper import TIME_TO_QUALITY
    from projects.paper_studies.paper_studies.speed import STEP_TIMES, StepTimes
    root = str(tmp_path)
    for label in ('transvae_micro', 'cnn_micro'):
        _write_scalars(run.work_dir_of(root, label, 0), '20260101_000000', [
            {'lr': 1e-4, 'loss': 1.0, 'time': 2.0, 'step': 10}, {'psnr': 15.0, 'lpips': 0.4, 'step': 10}])
    StepTimes(seconds={'transvae_micro': [0.5, 0.6], 'cnn_micro': [0.4, 0.4]}, batch_size=16, resolution=64,
              threads=1).save(osp.join(root, STEP_TIMES))
    parser = time_to_quality_parser()
    time_to_quality_main(parser.parse_args(['--root', root, '--no-train']), parser)
    out = capsys.readouterr().out
    assert 'ratio transvae_micro / cnn_micro: 1.375' in out and TIME_TO_QUALITY.name in out
    assert osp.getsize(osp.join(root, 'time_to_quality.png')) > 1000
    assert '| transvae_micro s0 | 10 | 15.0000 | 0.4000 |' in open(osp.join(root, 'time_to_quality.md')).read()
    with pytest.raises(SystemExit):  # another study's runs are trained by its own tool
        time_to_quality_main(parser.parse_args(['--root', root, '--study', 'fig1']), parser)


def test_step_time_config_is_the_one_the_run_recorded(tmp_path):
    """A run's recorded command line (done.json, else driver.log) gives the config that is timed; without a run,
    the driver's options do."""
    import shlex

    from projects.paper_studies.paper_studies.paper import TIME_TO_QUALITY
    from projects.paper_studies.paper_studies.speed import recorded_command, variant_config
    root = str(tmp_path)
    v = TIME_TO_QUALITY.variants[1]  # cnn_micro: its own cfg_options (num_res_blocks=2)
    opts = run.RunOptions(seeds=(0,), preset=None, batch_size=4)
    assert variant_config(v, root, opts).train_dataloader.batch_size == 4  # no run on disk: the options
    wd = run.work_dir_of(root, v.label, 0)
    os.makedirs(wd)
    assert recorded_command(wd) is None
    cmd = run.train_command(run.write_overlay(v, root), wd, 0, run.RunOptions(batch_size=3, preset=None), v)
    with open(osp.join(wd, 'driver.log'), 'w') as f:
        f.write(f'# 2026-01-01 00:00:00 {shlex.join(cmd[:2] + ["old.py"])}\nlog line\n'
                f'# 2026-01-02 00:00:00 {shlex.join(cmd)}\n11/30 mmengine output\n')
    assert recorded_command(wd) == cmd[2:]  # the last command of the log
    cfg = variant_config(v, root, opts)
    assert cfg.train_dataloader.batch_size == 3 and cfg.model.arch.num_res_blocks == 2
    assert variant_config(v, root, opts, recorded=False).train_dataloader.batch_size == 4
    with open(osp.join(wd, run.DONE), 'w') as f:  # done.json wins; a dist_train.sh command drops its GPU count
        json.dump(dict(command=shlex.join(['bash', 'tools/dist_train.sh', cmd[2], '2', *cmd[3:]])), f)
    assert recorded_command(wd) == cmd[2:]
