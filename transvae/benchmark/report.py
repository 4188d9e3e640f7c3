"""The benchmark's text report (stdout): machine, parameters, GMACs and latency, memory, ratios, train step."""
from __future__ import annotations

import math
import os.path as osp
from typing import Optional

__all__ = ['print_report']


def _fmt(v: Optional[float], nd: int = 2) -> str:
    return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.{nd}f}'


def print_report(r: dict) -> None:
    print('\n=== benchmark:', r['machine']['device'], r['machine']['processor'] or r['machine']['platform'],
          f"threads={r['machine']['torch_threads']}", '===')
    print('command:', r['command'])
    print(f"allocator: {r['machine'].get('allocator')}, mmap threshold "
          f"{r['machine'].get('mmap_threshold_mb') or 'default'} MiB")
    if 'matmul_peak' in r:
        print(f"{r['matmul_peak'].get('dtype', 'fp32')} matmul peak: {r['matmul_peak']['gflops']:.1f} GFLOP/s "
              f"(per size: {', '.join(f'{k}: {v:.0f}' for k, v in r['matmul_peak']['per_size_gflops'].items())})")
    rows = list(r['models'].items()) + ([('SD-VAE', r['reference'])] if r.get('reference') else [])
    print(f"{'model':32s} {'params(M)':>10s}")
    for name, e in rows:
        p = e.get('params_M', e.get('params_encoder_M', 0) + e.get('params_decoder_M', 0))
        print(f'{name:32s} {p:10.1f}')
    print(f"\n{'model':32s} {'res':>5s} {'b':>3s} {'GMACs enc/dec':>16s} {'enc s':>8s} {'dec s':>8s} {'img/s':>7s}")
    for name, e in rows:
        for res, per_b in e['latency'].items():
            for b, lat in per_b.items():
                g = e['gmacs'].get(res, {})
                te, td = lat.get('encode', {}).get('median_s'), lat.get('decode', {}).get('median_s')
                ips = int(b) / ((te or 0) + (td or 0)) if (te or td) else None
                print(f"{name:32s} {res:>5s} {b:>3s} {_fmt(g.get('encode'), 1):>7s}/{_fmt(g.get('decode'), 1):<8s} "
                      f'{_fmt(te, 3):>8s} {_fmt(td, 3):>8s} {_fmt(ips, 2):>7s}')
    print(f"\n{'model':32s} {'memory run':28s} {'peak MiB':>9s} {'proc peak':>10s} {'wall s':>8s}")
    for name, e in rows:
        for key, m in e['memory'].items():
            if 'error' in m:
                print(f"{name:32s} {key:28s} error: {m['error'][-200:]}")
                continue
            print(f"{name:32s} {key:28s} {m['peak_delta_mb']:9.0f} {m['peak_rss_mb']:10.0f} {m['wall_s']:8.1f}")
    if r['ratios']:
        print('\nratios vs SD-VAE (same run):')
        for name, rr in r['ratios'].items():
            for k, v in rr.items():
                print(f'  {name} {k}: ' + ', '.join(f'{kk}={vv:.3f}' for kk, vv in v.items()))
    for key in ('train_step', 'train_step_reference'):
        if key in r:
            t = r[key]
            frac = t['fraction_of_matmul_peak']
            print(f"{'' if key == 'train_step_reference' else chr(10)}train step ({osp.basename(t['config'])}, "
                  f"b{t['batch']} @ {t['res']}², {t['forward_gmacs']:.2f} fwd GMACs): {t['median_s']:.3f} s, "
                  f"{t['images_per_s']:.1f} img/s, {t['achieved_gflops']:.1f} GFLOP/s achieved"
                  + (f' = {100 * frac:.0f}% of the matmul peak' if frac else ''))
    if 'switch_ratios' in r:
        print('\nswitch time ratios (switch / plain; < 1 is faster):')
        for part in ('enc+dec', 'train_step'):
            for k, v in r['switch_ratios'].get(part, {}).items():
                print(f"  {part:10s} {k:16s} {v['ratio_vs_plain']:.3f}  ({v['median_s']:.3f} s)")
        mem = r['switch_ratios'].get('train_step_memory', {})
        if 'ratio_grad_checkpoint_vs_plain' in mem:
            print(f"  train_step peak memory, grad checkpoint / plain: {mem['ratio_grad_checkpoint_vs_plain']:.3f}")
    if 'component_costs' in r:
        c = r['component_costs']
        print(f"\ncomponent costs (removed: an upper bound on what a faster kernel of it gains; "
              f"enc+dec at {c['resolution']}², batch 1):")
        for part, key in (('enc+dec', 'speedup_over_gmacs_ratio'), ('train_step', 'flops_ratio_vs_reference')):
            for k, v in c.get(part, {}).items():
                print(f"  {part:10s} {k:22s} {v['median_s']:.3f} s, time / plain {v['time_ratio_vs_plain']:.3f}"
                      + (f", {key} {v[key]:.3f}" if key in v else ''))
