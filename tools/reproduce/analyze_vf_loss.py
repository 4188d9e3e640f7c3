"""Reproduce PAPER.md Table 2 (a)/(b) for a model pair trained with and without the VF loss.

``python tools/reproduce/analyze_vf_loss.py --with CONFIG CKPT --without CONFIG CKPT --data-root DATA
--work-dir DIR [--num-samples 10000] [--runs 10] [--probe-epochs 90] [--pool gap] [--preset cpu]``

For each model: extract posterior means of the train split (for the probe, with h-flips) and of the val / test split
(latent statistics: density CV, normalised entropy, Gini; probe evaluation) with ``tools/extract_latents.py``
(resumable: re-running skips finished shards), then run ``latent_stats`` and ``linear_probe``. Writes
``DIR/vf_analysis.json`` and prints a Markdown table. ``CKPT`` may be ``none`` (e.g. ``DiffusersAutoencoderKL``).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys

_TOOLS = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, _TOOLS)
sys.path.insert(0, osp.join(_TOOLS, 'analysis_tools'))
sys.path.insert(0, osp.dirname(_TOOLS))

import extract_latents as el  # noqa: E402
import latent_stats as ls  # noqa: E402
import linear_probe as lp  # noqa: E402


def extract_split(config: str, ckpt: str, split: str, out: str, args: argparse.Namespace, flip: bool) -> str:
    cfg = el.load_config(config, args.preset, args.data_root)
    model = el.build_model(cfg, ckpt, args.device)
    dataset = el.build_dataset(cfg, split, args.resolution)
    el.extract(model, dataset, out, shard_size=args.shard_size, flip=flip, batch_size=args.batch_size,
               num_workers=args.num_workers, collate_fn=el._collate_fn(cfg, split), device=args.device,
               max_items=args.max_items, meta=dict(config=osp.abspath(config), checkpoint=ckpt, split=split,
                                                     resolution=args.resolution))
    if el.compute_stats(out) is None:
        raise RuntimeError(f'incomplete shards in {out}')
    return out


def analyze_model(name: str, config: str, ckpt: str, args: argparse.Namespace) -> dict:
    root = osp.join(args.work_dir, name)
    val_dir = extract_split(config, ckpt, args.eval_split, osp.join(root, f'latents_{args.eval_split}'), args,
                            flip=True)
    res = dict(config=config, checkpoint=ckpt)
    res['latent_stats'] = ls.analyze_dir(val_dir, args.num_samples, args.runs, args.seed)
    if not args.skip_probe:
        train_dir = extract_split(config, ckpt, 'train', osp.join(root, 'latents_train'), args, flip=True)
        res['linear_probe'] = lp.probe_dirs(train_dir, val_dir, pool=args.pool, epochs=args.probe_epochs,
                                            batch_size=args.probe_batch_size, seed=args.seed, device=args.device)
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
