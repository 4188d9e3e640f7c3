"""Smoke run of tools/analysis_tools/benchmark.py (subprocess; no timing assertions)."""
from __future__ import annotations

import json
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_smoke(tmp_path):
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, osp.join(REPO, 'tools/analysis_tools/benchmark.py'),
           osp.join(REPO, 'configs/_base_/models/transvae-t_f16d32.py'), '--preset', 'cpu', '--resolutions', '64',
           '--repeats', '1', '--warmup', '0', '--mem-modes', 'decode', '--no-reference', '--no-peak', '--threads', '2',
           '--train-step', '--train-batch', '2', '--train-res', '32', '--train-repeats', '1', '--json', str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    (name, m), = res['models'].items()
    assert m['params_encoder_M'] > 0 and m['gmacs']['64']['total'] > 0
    lat = m['latency']['64']['1']
    assert lat['encode']['median_s'] > 0 and lat['decode']['images_per_s'] > 0
    mem = m['memory']['decode@64/b1']
    assert 'error' not in mem and mem['peak_rss_mb'] > 0
    assert 'ratios vs' not in proc.stdout  # no reference requested
    # the micro train step and the plain conv VAE of its size, measured in the same loop
    for key, cfg in (('train_step', 'transvae-micro_f8d16.py'), ('train_step_reference', 'cnn-vae-micro_f8d16.py')):
        assert res[key]['config'].endswith(cfg) and res[key]['median_s'] > 0 and res[key]['forward_gmacs'] > 0
    assert 'allocator' in res['machine'] and 'mmap_threshold_mb' in res['machine']
