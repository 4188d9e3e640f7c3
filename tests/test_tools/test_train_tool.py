"""tools/train.py, tools/test.py and tools/dist_train.sh end to end on a tiny test VAE."""
import json

import torch

import tiny_vae_fixtures as tv
from transvae.apis import train_cli


def test_train_then_test_subprocess(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=2, val_interval=2, ckpt_interval=1)
    wd = tmp_path / 'wd'
    tv.run_checked([tv.PYTHON, 'tools/train.py', cfg, '--work-dir', str(wd)])
    assert (wd / 'iter_1.pth').is_file() and (wd / 'iter_2.pth').is_file()
    assert (wd / 'last_checkpoint').read_text().strip() == str(wd / 'iter_2.pth')
    ckpt = tv.load_ckpt(str(wd / 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2 and 'optimizer' in ckpt and 'param_schedulers' in ckpt and 'rng_state' in ckpt
    logs = list(wd.glob('*/vis_data/scalars.json'))
    assert logs and 'tiny/psnr' in logs[0].read_text()  # validation ran at the end

    out = tmp_path / 'metrics.json'
    show = tmp_path / 'show'
    proc = tv.run_checked([tv.PYTHON, 'tools/test.py', cfg, str(wd / 'iter_2.pth'), '--work-dir',
                           str(tmp_path / 'twd'), '--out', str(out), '--show-dir', str(show)])
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('metrics: ')]
    assert line, proc.stdout[-2000:]
    printed = json.loads(line[-1][len('metrics: '):])
    assert 'tiny/psnr' in printed
    saved = json.loads(out.read_text())
    assert saved['metrics'] == printed and saved['checkpoint'].endswith('iter_2.pth')
    assert len(list(show.glob('*.png'))) == 4  # one input | reconstruction image per test sample


def test_resume_matches_uninterrupted_run(tmp_path):
    """2 iterations + `--resume` to 4 ends with exactly the weights, optimizer and scheduler of a 4-iteration run."""
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=4, val_interval=2, ckpt_interval=2)
    train_cli.main([cfg, '--work-dir', str(tmp_path / 'full')])
    train_cli.main([cfg, '--work-dir', str(tmp_path / 'part'), '--max-iters', '2'])
    assert not (tmp_path / 'part' / 'iter_4.pth').exists()
    train_cli.main([cfg, '--work-dir', str(tmp_path / 'part'), '--resume'])  # auto: from last_checkpoint (iter 2)

    full = tv.load_ckpt(str(tmp_path / 'full' / 'iter_4.pth'))
    part = tv.load_ckpt(str(tmp_path / 'part' / 'iter_4.pth'))
    assert part['meta']['iter'] == 4
    for k, v in full['state_dict'].items():
        assert torch.equal(v, part['state_dict'][k]), k
    fo, po = full['optimizer']['state'], part['optimizer']['state']
    assert fo.keys() == po.keys()
    for k in fo:
        assert float(fo[k]['step']) == float(po[k]['step']) == 4
        assert torch.equal(fo[k]['exp_avg'], po[k]['exp_avg'])
    assert full['param_schedulers'] == part['param_schedulers']
    assert full['optimizer']['param_groups'][0]['lr'] == part['optimizer']['param_groups'][0]['lr']


def test_resume_from_path_continues_at_its_iteration(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=3, val_interval=3, ckpt_interval=1)
    train_cli.main([cfg, '--work-dir', str(tmp_path / 'a')])
    train_cli.main([cfg, '--work-dir', str(tmp_path / 'b'), '--resume', str(tmp_path / 'a' / 'iter_2.pth')])
    ckpts = sorted(p.name for p in (tmp_path / 'b').glob('iter_*.pth'))
    assert ckpts == ['iter_3.pth']  # continued at iteration 2, not from scratch
    b3 = tv.load_ckpt(str(tmp_path / 'b' / 'iter_3.pth'))
    a3 = tv.load_ckpt(str(tmp_path / 'a' / 'iter_3.pth'))
    for k, v in a3['state_dict'].items():
        assert torch.equal(v, b3['state_dict'][k]), k


def test_dist_train_and_test_gloo_two_ranks(tmp_path):
    """2-rank CPU DDP through the shell launchers (gloo), with the grid and time-budget hooks active."""
    hooks = [dict(type='ReconstructionGridHook', interval=2, num_images=2, max_side=16),
             dict(type='TimeBudgetHook', seconds=3600)]
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=4, val_interval=2, ckpt_interval=2,
                          custom_hooks=hooks)
    wd = tmp_path / 'wd'
    proc = tv.run_checked(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', str(wd)], timeout=240,
                          PYTHON=tv.PYTHON, PORT=tv.free_port())
    assert (wd / 'iter_4.pth').is_file()
    ckpt = tv.load_ckpt(str(wd / 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])
    assert sorted(p.name for p in (wd / 'vis').glob('*.png')) == ['iter_2.png', 'iter_4.png']
    log = next(wd.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'tiny/psnr' in log and 'budget_left_s' in log, proc.stdout[-2000:]

    out = tmp_path / 'm.json'
    proc = tv.run_checked(['bash', 'tools/dist_test.sh', cfg, str(wd / 'iter_4.pth'), '2', '--work-dir',
                           str(tmp_path / 't'), '--out', str(out)], timeout=240, PYTHON=tv.PYTHON, PORT=tv.free_port())
    assert proc.stdout.count('metrics: ') == 1  # printed by rank 0 only
    assert 'tiny/psnr' in json.loads(out.read_text())['metrics']
