"""Reproduce PAPER.md Table 2 (a)/(b) for a model pair trained with and without the VF loss.

``.venv/bin/python tools/reproduce/analyze_vf_loss.py --with CONFIG CKPT --without CONFIG CKPT --data-root DATA
--work-dir DIR [--num-samples 10000] [--runs 10] [--probe-epochs 90] [--pool gap] [--preset cpu]``

For each model: extract posterior means of the train split (for the probe, with h-flips) and of the val / test split
(latent statistics: density CV, normalised entropy, Gini; probe evaluation) with ``tools/extract_latents.py``
(resumable: re-running skips finished shards), then run ``latent_stats`` and ``linear_probe`` (each tool through its
command line, in a subprocess). Writes
``DIR/vf_analysis.json`` and prints a Markdown table. ``CKPT`` may be ``none`` (a model that loads its own weights).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys

TOOLS = osp.abspath(osp.join(osp.dirname(__file__), '..'))


def run_tool(script: str, *argv: str) -> None:
    """Run ``tools/<script>`` with this interpreter (the tools are scripts, run through their command lines)."""
    subprocess.run([sys.executable, osp.join(TOOLS, script), *argv], check=True)


def extract_split(config: str, ckpt: str, split: str, out: str, args: argparse.Namespace, flip: bool) -> str:
    """Posterior means of ``split`` into the shards of ``out`` (``tools/extract_latents.py``; resumable)."""
    argv = [config, str(ckpt), '--out', out, '--split', split, '--shard-size', str(args.shard_size),
            '--batch-size', str(args.batch_size), '--num-workers', str(args.num_workers), '--device', args.device]
    for flag, value in (('--preset', args.preset), ('--data-root', args.data_root),
                        ('--resolution', args.resolution), ('--max-items', args.max_items)):
        if value is not None:
            argv += [flag, str(value)]
    if flip:
        argv.append('--flip')
    if args.trust_checkpoint:
        argv.append('--trust-checkpoint')
    run_tool('extract_latents.py', *argv)
    if not osp.isfile(osp.join(out, 'latents_stats.safetensors')):
        raise RuntimeError(f'incomplete shards in {out}')
    return out


def _json_of(script: str, out: str, *argv: str) -> dict:
    run_tool(script, *argv, '--out', out)
    with open(out) as f:
        return json.load(f)


def analyze_model(name: str, config: str, ckpt: str, args: argparse.Namespace) -> dict:
    root = osp.join(args.work_dir, name)
    val_dir = extract_split(config, ckpt, args.eval_split, osp.join(root, f'latents_{args.eval_split}'), args,
                            flip=True)
    res = dict(config=config, checkpoint=ckpt)
    res['latent_stats'] = _json_of('analysis_tools/latent_stats.py', osp.join(root, 'latent_stats.json'), val_dir,
                                   '--num-samples', str(args.num_samples), '--runs', str(args.runs),
                                   '--seed', str(args.seed))
    if not args.skip_probe:
        train_dir = extract_split(config, ckpt, 'train', osp.join(root, 'latents_train'), args, flip=True)
        res['linear_probe'] = _json_of('analysis_tools/linear_probe.py', osp.join(root, 'linear_probe.json'),
                                       train_dir, val_dir, '--pool', args.pool, '--epochs', str(args.probe_epochs),
                                       '--batch-size', str(args.probe_batch_size), '--seed', str(args.seed),
                                       '--device', args.device)
    return res


def markdown(results: dict) -> str:
    lines = ['| Model | Linear-probe top-1 | Density CV ↓ | Norm. entropy ↑ | Gini ↓ |', '|---|---|---|---|---|']
    for name, r in results.items():
        m = r['latent_stats']['mean']
        top1 = f"{r['linear_probe']['top1']:.2f}" if 'linear_probe' in r else '-'
        lines.append(f"| {name} | {top1} | {m['density_cv']:.3f} | {m['normalized_entropy']:.4f} | {m['gini']:.3f} |")
    return '\n'.join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Latent statistics + linear probe, with vs without the VF loss')
    p.add_argument('--with', dest='with_vf', nargs=2, metavar=('CONFIG', 'CKPT'), required=True)
    p.add_argument('--without', dest='without_vf', nargs=2, metavar=('CONFIG', 'CKPT'), required=True)
    p.add_argument('--work-dir', required=True)
    p.add_argument('--data-root')
    p.add_argument('--preset')
    p.add_argument('--eval-split', default='test', choices=['val', 'test'])
    p.add_argument('--resolution', type=int)
    p.add_argument('--shard-size', type=int, default=10000)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--num-workers', type=int, default=2)
    p.add_argument('--max-items', type=int, help='first N items of each split (quick runs)')
    p.add_argument('--num-samples', type=int, default=10000)
    p.add_argument('--runs', type=int, default=10)
    p.add_argument('--skip-probe', action='store_true')
    p.add_argument('--pool', default='gap', choices=['gap', 'flatten'])
    p.add_argument('--probe-epochs', type=int, default=90)
    p.add_argument('--probe-batch-size', type=int, default=1024)
    p.add_argument('--seed', type=int, default=0)
    import torch
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='passed to tools/extract_latents.py: allow checkpoints that need arbitrary unpickling')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    results = {'with VF': analyze_model('with_vf', *args.with_vf, args),
               'without VF': analyze_model('without_vf', *args.without_vf, args)}
    with open(osp.join(args.work_dir, 'vf_analysis.json'), 'w') as f:
        json.dump(results, f, indent=2)
    print(markdown(results))
    return results


if __name__ == '__main__':
    main()
