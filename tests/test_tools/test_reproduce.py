"""tools/reproduce: the ablation driver (train, skip-if-done, resume), results parsing / plotting, rec-loss metric."""
import argparse
import json
import os
import os.path as osp
import sys

import pytest
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, osp.join(REPO, 'tools', 'reproduce'))
import _common as rc  # noqa: E402

# shrink the CPU preset further: 2 val photos, batch 2
SHRINK = ['train_dataloader.batch_size=2', 'val_dataloader.dataset.max_images=2', 'val_dataloader.batch_size=2',
          'default_hooks.logger.interval=1']


def _args(root, max_iters=2, **kw):
    parser = rc.add_common_args(argparse.ArgumentParser(), default_root=str(root))
    args = parser.parse_args(['--max-iters', str(max_iters), '--val-interval', str(max_iters),
                              '--cfg-options', *SHRINK])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def _study(labels=('cnn', 'multi')):
    vs = {'cnn': rc.Variant('cnn', 'cnn_vae', 0.183), 'multi': rc.Variant('multi', 'stage_multi', 0.185)}
    return rc.Study('tiny', 'Fig. test', [vs[k] for k in labels], expected_order=['cnn', 'multi'],
                    claims=[rc.Claim('cnn', '<', 'multi'), rc.Claim('cnn', '≈', 'multi')])


def _write_scalars(wd, stamp, rows):
    d = osp.join(wd, stamp, 'vis_data')
    os.makedirs(d, exist_ok=True)
    with open(osp.join(d, 'scalars.json'), 'w') as f:
        for r in rows:
            f.write(json.dumps(r) + '\n')


# ---------------------------------------------------------------------------------------------------------------------
def test_driver_trains_skips_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    root = tmp_path / 'abl'
    study = _study()
    args = _args(root)
    rc.main_for_study(study, args)
    for lab in ('cnn', 'multi'):
        wd = root / lab
        done = json.loads((wd / 'done.json').read_text())
        assert done['max_iters'] == 2 and '--resume auto' in done['command'] and '--preset cpu' in done['command']
        assert (wd / 'iter_2.pth').is_file()
        val, train = rc.read_scalars(str(wd))
        assert [r['step'] for r in val] == [2]  # keyed by iteration, not by epoch 0
        assert {'rec_loss', 'psnr', 'ssim', 'lpips'} <= set(val[0])
        assert 0 < val[0]['rec_loss'] < 5
    assert (root / 'curves.png').stat().st_size > 0
    md = (root / 'results.md').read_text()
    assert 'Measured ordering' in md and 'Paper ordering' in md and ('agrees' in md or 'disagrees' in md)
    assert (root / 'results.csv').read_text().count('\n') == 3
    run = json.loads((root / 'driver_runs.jsonl').read_text().splitlines()[-1])
    assert run['variants'] == ['cnn', 'multi'] and run['wall_s'] > 0 and 'Driver runs' in md

    # skip-if-done: no subprocess at all on a second run
    def boom(*a, **k):
        raise AssertionError('a finished variant was retrained')

    monkeypatch.setattr(rc.subprocess, 'Popen', boom)
    rc.run_all(study.variants, str(root), args)
    monkeypatch.undo()
    monkeypatch.setenv('OMP_NUM_THREADS', '1')

    # resume: an unfinished variant (checkpoint, no done.json) continues from its last checkpoint
    (root / 'cnn' / 'done.json').unlink()
    rec = rc.run_variant(study.variants[0], str(root), _args(root, max_iters=3))
    assert rec['max_iters'] == 3
    log = (root / 'cnn' / 'driver.log').read_text()
    assert 'resumed' in log.lower() or 'resume' in log.lower()
    val, train = rc.read_scalars(str(root / 'cnn'))
    assert [r['step'] for r in val] == [2, 3]
    # the logged rec_loss is the current value (mmengine would log a running mean of 'loss' keys otherwise)
    for path in (root / 'cnn').glob('*/vis_data/scalars.json'):
        for r in (json.loads(x) for x in path.read_text().splitlines() if 'rec_loss' in x):
            assert r['rec_loss'] == pytest.approx(r['rec_l1'] + r['rec_lpips'], rel=1e-9)
    # the resumed run trained only iteration 3
    runs = sorted((root / 'cnn').glob('*/vis_data/scalars.json'))
    last = [json.loads(x) for x in runs[-1].read_text().splitlines() if x.strip()]
    assert [r['step'] for r in last if 'lr' in r] == [3]
    # a done variant with fewer iterations than asked is not 'done'
    assert rc.is_done(str(root / 'multi'), 2) and not rc.is_done(str(root / 'multi'), 3)


def test_train_command_launchers(tmp_path):
    a = _args(tmp_path)
    cmd = rc.train_command('c.py', 'wd', a)
    assert cmd[1].endswith('tools/train.py') and cmd[cmd.index('--resume') + 1] == 'auto'
    assert 'train_cfg.val_interval=2' in cmd
    a.gpus = 4
    cmd = rc.train_command('c.py', 'wd', a)
    assert cmd[0] == 'bash' and cmd[1].endswith('dist_train.sh') and cmd[3] == '4'
    a.gpus, a.launcher, a.preset = 1, 'slurm', 'none'
    cmd = rc.train_command('c.py', 'wd', a)
    assert cmd[-2:] == ['--launcher', 'slurm'] and '--preset' not in cmd


def test_overlay_adds_rec_loss_metric_and_hooks(tmp_path):
    from mmengine.config import Config
    v = rc.Variant('x', 'cnn_vae', hooks=[dict(type='ReconstructionGridHook', interval=0, at_iters=[2])])
    cfg = Config.fromfile(rc.write_overlay(v, str(tmp_path)))
    types = [e['type'] for e in cfg.val_evaluator]
    assert types[-1] == 'ReconstructionLossMetric' and 'PSNRMetric' in types
    assert cfg.default_hooks.logger.log_metric_by_epoch is False
    assert cfg.default_hooks.logger.interval == 10  # merged, not replaced
    assert cfg.custom_hooks[-1]['type'] == 'ReconstructionGridHook'
    assert cfg.log_processor.custom_cfg[0]['data_src'] == 'rec_loss' and cfg.log_processor.window_size == 10
    assert 'model_presets' in cfg  # the presets still come through for --preset cpu


def test_results_parsing_and_plotting_synthetic(tmp_path):
    root = tmp_path
    # variant a: first run to step 20, resumed run re-logs step 20 and goes on; val logged by epoch (step 0)
    _write_scalars(str(root / 'a'), '20260101_000000', [
        {'lr': 1e-4, 'loss': 3.0, 'step': 10}, {'psnr': 12.0, 'ssim': .2, 'lpips': .6, 'rec_loss': .9, 'step': 0},
        {'lr': 1e-4, 'loss': 2.0, 'step': 20}, {'psnr': 13.0, 'ssim': .3, 'lpips': .5, 'rec_loss': .8, 'step': 0}])
    _write_scalars(str(root / 'a'), '20260101_010000', [
        {'lr': 1e-4, 'loss': 2.0, 'step': 30}, {'psnr': 15.0, 'ssim': .4, 'lpips': .4, 'rec_loss': .6, 'step': 30},
        {'lr': 1e-4, 'loss': 2.0, 'step': 40}, {'psnr': 14.0, 'ssim': .35, 'lpips': .45, 'rec_loss': .7, 'step': 40}])
    _write_scalars(str(root / 'b'), '20260101_000000', [
        {'psnr': 11.0, 'ssim': .1, 'lpips': .7, 'rec_loss': 1.0, 'step': 20},
        {'psnr': 12.0, 'ssim': .2, 'lpips': .6, 'rec_loss': .95, 'step': 40}])
    val, train = rc.read_scalars(str(root / 'a'))
    assert [r['step'] for r in val] == [10, 20, 30, 40] and len(train) == 4
    study = rc.Study('syn', 'Fig. X', [rc.Variant('a', 'cnn_vae', 0.18), rc.Variant('b', 'stage_multi', 0.30)],
                     expected_order=['a', 'b'],
                     claims=[rc.Claim('a', '<', 'b'), rc.Claim('a', '≈', 'b'), rc.Claim('a', '≪', 'b')])
    md = rc.report(study, str(root), tol=0.03)
    curves, summ = rc.collect(study.variants, str(root))
    assert summ['a']['final_rec_loss'] == pytest.approx(.7) and summ['a']['best_rec_loss'] == pytest.approx(.6)
    assert summ['a']['best_psnr'] == pytest.approx(15.0) and summ['a']['best_rec_loss_step'] == 30
    assert summ['a']['final_step'] == 40
    assert '**Measured ordering** (by final_rec_loss, best first): a < b' in md
    assert 'Full strict ordering: **agrees**' in md
    assert '| a < b | 0.7000 vs 0.9500 (-26.3%) | agrees |' in md
    assert '| a ≈ b | 0.7000 vs 0.9500 (-26.3%) | disagrees |' in md
    assert '| a ≪ b | 0.7000 vs 0.9500 (-26.3%) | agrees |' in md
    assert (root / 'curves.png').stat().st_size > 1000
    rows = (root / 'results.csv').read_text().splitlines()
    assert rows[0].startswith('label,config,paper_rec_loss') and rows[1].startswith('a,cnn_vae,0.18,40')


def test_check_claim_missing_and_ordering():
    assert rc.check_claim(rc.Claim('a', '<', 'b'), {'a': 1.0}, 0.03)[0] == 'n/a'
    s = {'x': {'final_rec_loss': 1.0}, 'y': {'final_rec_loss': 1.01}, 'z': {'final_rec_loss': 2.0}}
    order = rc.measured_order(s, 'final_rec_loss')
    assert order == ['x', 'y', 'z'] and rc.order_string(order, s, 'final_rec_loss', 0.03) == 'x ≈ y < z'
    s = {'x': {'final_psnr': 20.0}, 'y': {'final_psnr': 25.0}}
    assert rc.measured_order(s, 'final_psnr') == ['y', 'x']  # higher is better


# ---------------------------------------------------------------------------------------------------------------------
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


def test_center_crop_and_checkpoint_resolution(tmp_path):
    from PIL import Image
    import numpy as np
    p = tmp_path / 'v' / 'img.png'
    p.parent.mkdir()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(p)
    x, up = rc.center_crop_photo(str(p), 32)
    assert x.shape == (3, 32, 32) and not up
    x, up = rc.center_crop_photo(str(p), 64)
    assert x.shape == (3, 64, 64) and up
    wd = tmp_path / 'wd'
    wd.mkdir()
    (wd / 'iter_5.pth').write_bytes(b'')
    (wd / 'iter_10.pth').write_bytes(b'')
    (wd / 'x.py').write_text('')
    assert rc.resolve_checkpoint(str(wd)) == (str(wd / 'x.py'), str(wd / 'iter_10.pth'))
    assert rc.resolve_checkpoint(str(wd), step=5)[1] == str(wd / 'iter_5.pth')
    with pytest.raises(FileNotFoundError):
        rc.resolve_checkpoint(str(wd), step=7)
