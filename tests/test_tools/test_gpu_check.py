"""``tools/analysis_tools/gpu_check.sh``: the GPU check runs its steps on the CPU with ``--dry-run`` (so it cannot
rot), refuses to start without CUDA otherwise, and its MFU / planner / benchmark rows are computed as stated."""
from __future__ import annotations

import json
import os
import os.path as osp
import subprocess
import time

import pytest
import torch

from tools.analysis_tools import gpu_check as tool
from transvae.benchmark.gpu_check import (TrainStep, benchmark_rows, bf16_peak, config_text, render_markdown,
                                          train_row)
from transvae.benchmark.gpu_check_run import finish, start
from transvae.benchmark.step_meter import summarise_steps

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'gpu_check.sh')
TRAIN_STEPS = ('t_stage1', 't_gan', 'dit_b1', 'l_fsdp')


@pytest.mark.slow  # minutes on a loaded 2-core CPU (a dozen interpreters start); CI runs it, mutation runs do not
def test_dry_run_runs_every_step_and_writes_the_report(tmp_path):
    """The whole check on the CPU at tiny sizes: every step ran (its own process), every row is filled."""
    out = tmp_path / 'check'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    t0 = time.monotonic()
    proc = subprocess.run(['bash', SCRIPT, '--dry-run', str(out), '--budget-s', '1200'], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=1500)
    wall = time.monotonic() - t0
    report = json.loads((out / 'gpu_check.json').read_text())
    status = {s['name']: s['status'] for s in report['steps']}
    assert proc.returncode == 0, (status, proc.stdout[-3000:], proc.stderr[-3000:])
    assert report['dry_run'] and report['wall_s'] <= wall
    planner = osp.isfile(tool.PLANNER)
    expected = {'prep', *TRAIN_STEPS, 'benchmark'} | ({f'planner_{s}' for s in ('t_stage1', 'dit_b1', 'l_fsdp')}
                                                      if planner else set())
    assert set(status) == expected and set(status.values()) == {'ok'}, status

    rows = {r['step']: r for r in report['train_rows']}
    assert set(rows) == set(TRAIN_STEPS)
    for name, r in rows.items():
        assert r['measured'] and r['finished'] and r['iters_done'] == r['iters_requested'] == 2, (name, r)
        assert r['batch_size'] == 2 and r['world_size'] == 1 and r['losses_finite'], (name, r)
        assert r['step_s_median'] > 0 and r['flops_per_step'] > 0 and 0 < r['mfu'] < 1, (name, r)
        assert r['measured_peak_bytes'] > 0 and r['params'] > 0
        assert r['amp_dtype'] == 'bfloat16', (name, r['amp_dtype'])
        # the run trained the recipe: its config file is a child of the recipe config
        cfg = (out / 'configs' / f'{name}.py').read_text()
        assert f"_base_ = [{osp.join(REPO, r['config'])!r}]" in cfg
    assert any('attention' in op for op in rows['dit_b1']['flops_by_op_top']), rows['dit_b1']['flops_by_op_top']
    assert any("t_stage1's checkpoint" in n for n in rows['t_gan']['notes'])
    assert rows['l_fsdp']['optim_wrapper'] == ['SafeAmpOptimWrapper']
    for name in ('t_stage1', 'dit_b1', 'l_fsdp'):
        p = rows[name]['planner']
        if not planner:
            assert p['status'] == 'planner unavailable'
            continue
        assert p['status'] == 'ok', (name, p)
        assert p['predicted_peak_bytes'] > 0 and p['measured_peak_bytes'] > 0
        # the planner traces the same step on fake tensors: its FLOPs are the ones the run counted
        assert p['counted_over_predicted_flops'] == pytest.approx(1.0, abs=0.02), (name, p)

    bench = report['benchmark_rows']
    assert [b['res'] for b in bench] == [16, 32, 48]
    for b in bench:
        assert b['encode_s'] > 0 and b['decode_s'] > 0 and b['gmacs'] > 0
        if report.get('benchmark_reference'):
            assert b['sdvae_encode_s'] > 0 and b['speedup_vs_sdvae'] > 0 and b['gmacs_ratio_sdvae_over_ours'] > 1
    md = (out / 'gpu_check.md').read_text()
    for name in expected:
        assert f'| {name} | ok |' in md
    print(f'gpu_check --dry-run: {wall:.1f} s wall')


@pytest.mark.skipif(torch.cuda.is_available(), reason='a CUDA device is present: the check would run')
def test_without_cuda_it_refuses_before_creating_anything(tmp_path):
    proc = subprocess.run(['bash', SCRIPT, str(tmp_path / 'out')], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith('error: no CUDA device'), proc.stderr
    assert '--dry-run' in lines[0] and not (tmp_path / 'out').exists()


def test_an_earlier_report_is_never_written_over(tmp_path):
    (tmp_path / 'old.md').write_text('x')
    with pytest.raises(SystemExit, match='exists and is not an empty folder'):
        tool.main(['--dry-run', str(tmp_path)])
    assert os.listdir(tmp_path) == ['old.md']


def test_a_step_past_its_timeout_is_ended_with_its_whole_process_group(tmp_path):
    """A step is a process tree (torchrun and its ranks): the timeout ends all of it, and the record says so."""
    pid_file = tmp_path / 'child.pid'
    run = start(['bash', '-c', f'sleep 60 & echo $! > {pid_file}; wait'], str(tmp_path / 'logs' / 'a.log'))
    while not pid_file.exists() or not pid_file.read_text().strip():
        time.sleep(0.05)
    child = int(pid_file.read_text())
    res = finish(run, timeout=1.0)
    assert res['status'] == 'timeout' and 1.0 <= res['wall_s'] < 15
    for _ in range(100):  # the grandchild was in the group: gone (a zombie at most until init reaps it)
        try:
            with open(f'/proc/{child}/stat') as fh:
                if fh.read().split(') ')[1][0] == 'Z':
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f'process {child} of the timed-out step still runs')
    ok = finish(start(['bash', '-c', 'exit 3'], str(tmp_path / 'logs' / 'b.log')), timeout=30)
    assert ok['status'] == 'failed' and ok['rc'] == 3
    assert (tmp_path / 'logs' / 'b.log').read_text().startswith('$ bash -c')


def test_the_peak_comes_from_the_device_name_an_override_or_a_measurement():
    assert bf16_peak('NVIDIA H100 80GB HBM3')['tflops'] == 989.4
    assert bf16_peak('NVIDIA H100 PCIe')['tflops'] == 756.5
    assert bf16_peak('NVIDIA H100 NVL')['tflops'] == 835.5
    assert bf16_peak('NVIDIA H200')['tflops'] == 989.4
    assert bf16_peak('NVIDIA A100-SXM4-80GB')['tflops'] == 312.0
    assert bf16_peak('NVIDIA L4')['tflops'] == 121.0 and bf16_peak('NVIDIA L40S')['tflops'] == 362.1
    assert bf16_peak('NVIDIA H100 80GB HBM3', override_tflops=500)['tflops'] == 500
    fallback = bf16_peak('Some New GPU', measured_tflops=123.0, measured_what='matmul')
    assert fallback == dict(tflops=123.0, source='matmul')
    unknown = bf16_peak('Some New GPU')
    assert unknown['tflops'] is None and '--peak-tflops' in unknown['source']


def test_step_statistics_leave_out_warmup_and_the_counted_iteration():
    steps = [9.0, 5.0, 1.0, 2.0, 3.0, 7.0]  # iteration 5 ran under the FLOP counter
    s = summarise_steps(steps, flop_iter=5, warmup=2)
    assert s == dict(timed_iters=3, warmup_iters=2, median_s=2.0, min_s=1.0, max_s=3.0)
    assert summarise_steps([4.0, 6.0], flop_iter=1, warmup=2)['median_s'] == 4.0  # too short for a warm-up
    assert summarise_steps([], flop_iter=None, warmup=2) == dict(timed_iters=0)


def test_train_row_mfu_and_planner_ratios():
    step = TrainStep('t_stage1', 'T', 'configs/x.py', {}, 20, batch=32)
    meter = dict(summary=dict(median_s=0.5, timed_iters=17), iter_s=[9.0, 9.0, 0.6, 0.7, 0.8], flops_per_step=2e14,
                 batch_size=32, iters_done=20, finished=True, world_size=1, params=10,
                 memory=dict(kind='cuda max_memory_allocated', peak_allocated_bytes=40 * 2**30),
                 losses=[dict(loss=2.0, loss_l1=1.5, l1=0.2), dict(loss=1.0, loss_l1=0.8)])
    planner = dict(status='ok', peak_memory_bytes=50 * 2**30, flops_per_step=2.5e14, step_time_s=0.25, fits=True)
    r = train_row(step, meter, dict(tflops=1000.0, source='x'), planner)
    assert r['mfu'] == pytest.approx(0.4) and r['achieved_tflops'] == pytest.approx(400.0)
    assert r['images_per_s'] == pytest.approx(64.0) and r['iter_s_median'] == pytest.approx(0.7)
    assert r['loss_first'] == 2.0 and r['loss_last'] == 1.0 and r['losses_finite']
    p = r['planner']
    assert p['measured_over_predicted_peak'] == pytest.approx(0.8)
    assert p['counted_over_predicted_flops'] == pytest.approx(0.8)
    assert p['measured_over_predicted_step'] == pytest.approx(2.0) and p['measured_note'] is None
    assert train_row(step, None, {}, dict(status='planner unavailable'))['planner']['status'] == 'planner unavailable'
    nan = dict(meter, losses=[dict(loss=float('nan'))])
    assert train_row(step, nan, dict(tflops=None), None)['losses_finite'] is False
    assert train_row(step, nan, dict(tflops=None), None)['mfu'] is None
    md = render_markdown(dict(steps=[dict(name='t_stage1', status='ok', wall_s=1.0)], train_rows=[r], peak={}))
    assert '| t_stage1 | 20/20 | 32 |' in md and '| 400 | 40% |' in md and '| 0.800 |' in md


def test_benchmark_rows_read_the_benchmark_document():
    lat = {'256': {'1': dict(encode=dict(median_s=0.01), decode=dict(median_s=0.02))}}
    doc = dict(models={'t': dict(latency=lat, gmacs={'256': dict(total=10.0)},
                                 memory={'decode@256/b1': dict(peak_delta_mb=100.0)})},
               reference=dict(name='SD-VAE', latency={'256': {'1': dict(encode=dict(median_s=0.03),
                                                                        decode=dict(median_s=0.06))}},
                              gmacs={'256': dict(total=20.0)}, memory={'decode@256/b1': dict(peak_delta_mb=300.0)}),
               ratios={'t': {'enc+dec@256/b1': dict(speedup_vs_sdvae=3.0, gmacs_ratio_sdvae_over_ours=2.0)}})
    (row, ) = benchmark_rows(doc, peak_tflops=1.0)
    assert row['res'] == 256 and row['speedup_vs_sdvae'] == 3.0 and row['sdvae_decode_s'] == 0.06
    assert row['mfu'] == pytest.approx(2e10 / 0.03 / 1e12) and row['sdvae_mfu'] == pytest.approx(4e10 / 0.09 / 1e12)
    assert benchmark_rows(doc)[0]['mfu'] is None  # no peak known
    assert row['decode_peak_mb'] == 100.0 and row['sdvae_decode_peak_mb'] == 300.0 and row['encode_peak_mb'] is None


def test_config_text_is_a_child_of_the_recipe(tmp_path):
    from mmengine.config import Config
    base = osp.join(REPO, 'configs', 'transvae', 'transvae-micro_f8d16_1xb16-10min_photos.py')
    path = tmp_path / 'child.py'
    path.write_text(config_text(base, dict(train_dataloader=dict(batch_size=3), val_cfg=None), 'a header\nline 2'))
    cfg = Config.fromfile(str(path))
    ref = Config.fromfile(base)
    assert cfg.train_dataloader.batch_size == 3 and cfg.val_cfg is None
    assert cfg.train_dataloader.dataset == ref.train_dataloader.dataset and cfg.model == ref.model


def test_step_commands_start_the_entry_points_the_command_line_gives(tmp_path):
    """The library starts no tool of its own: every step and planner command runs the given entry point."""
    from transvae.benchmark.gpu_check_steps import (STEP_INPUTS, STEPS, CheckTools, benchmark_cmd, make_plan,
                                                    planner_cmd, train_cmd)
    ep = CheckTools(train='T.py', dist_train='D.sh', benchmark='B.py', planner='P.py')
    plan = {s.name: s for s in make_plan(str(tmp_path), True, str(tmp_path / 'dinov2.safetensors'))}
    assert set(plan) | {'benchmark'} == set(STEPS) == set(STEP_INPUTS)
    cmd, env = train_cmd('py', ep, plan['t_stage1'], 'c.py', 'w', True, 1234)
    assert cmd[:3] == ['py', 'T.py', 'c.py'] and cmd[cmd.index('--amp-dtype') + 1] == 'bfloat16' and env == {}
    assert '--amp' not in train_cmd('py', ep, plan['dit_b1'], 'c.py', 'w', True, 1234)[0]  # its recipe's wrapper
    cmd, env = train_cmd('py', ep, plan['l_fsdp'], 'c.py', 'w', True, 1234)
    assert cmd[:4] == ['bash', 'D.sh', 'c.py', '1'] and env == dict(PYTHON='py', PORT='1234', PREFLIGHT='0')
    assert train_cmd('py', ep, plan['l_fsdp'], 'c.py', 'w', False, 1234)[1]['PREFLIGHT'] == '1'
    assert benchmark_cmd('py', ep, True, 'o.json')[:2] == ['py', 'B.py']
    assert planner_cmd('py', ep, 'c.py', 2, 80.0, None, 'p.json')[:3] == ['py', 'P.py', 'c.py']
