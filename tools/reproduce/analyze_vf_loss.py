"""Reproduce PAPER.md Table 2 (a)/(b) for a model pair trained with and without the VF loss.

``.venv/bin/python tools/reproduce/analyze_vf_loss.py --with CONFIG CKPT --without CONFIG CKPT --data-root DATA
--work-dir DIR [--num-samples 10000] [--runs 10] [--probe-epochs 90] [--pool gap] [--preset cpu]
[--eval-split test|val|train] [--probe-holdout K]``

For each model: extract posterior means of the train split (for the probe, with h-flips) and of the val / test split
(latent statistics: density CV, normalised entropy, Gini; probe evaluation) with ``tools/extract_latents.py``
(resumable: re-running skips finished shards), then run ``latent_stats`` and ``linear_probe`` (each tool through its
command line, in a subprocess). Writes
``DIR/vf_analysis.json`` and prints a Markdown table. ``CKPT`` may be ``none`` (a model that loads its own weights).

``--probe-holdout K`` probes within the train split instead, for datasets whose splits have disjoint classes (the
bundled photos: a class is a photo's source, and no source is in both splits): of every class with at least two
items, the last ``max(1, round(n / K))`` items in dataset order (a contiguous tail: the later frames of a video) are
held out for evaluation; the other items (single-item classes included) train the probe. The result records the
majority-class top-1 of the held-out items beside the probe's. ``--eval-split train`` (only with it) computes the
latent statistics on the train split as well (one vector per image: 165 bundled train photos instead of 8 val ones).

The VF loss's foundation network is read from each config (after ``--preset``) and named in the table; an offline
stand-in (``is_proxy``, e.g. ``VGG16Proxy``) is labelled a PROXY there and in the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys

import torch

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


def vf_target(config: str, preset: str | None) -> dict | None:
    """The VF loss's foundation network of ``config`` (after ``preset``): ``dict(type, name, is_proxy)``, or ``None``
    when the model has no VF loss."""
    from mmengine.config import Config

    from transvae.apis import register_all_modules
    from transvae.engine.config_surgery import apply_preset
    from transvae.registry import MODELS
    register_all_modules()
    cfg = Config.fromfile(config)
    if preset:
        cfg = apply_preset(cfg, preset)
    vf = cfg.model.get('vf_loss')
    if not vf:
        return None
    kind = vf['foundation_cfg']['type']
    cls = MODELS.get(kind)
    if cls is None:
        raise KeyError(f'{config}: VF foundation model {kind!r} is not registered')
    return dict(type=kind, name=getattr(cls, 'name', kind), is_proxy=bool(getattr(cls, 'is_proxy', False)))


def holdout_indices(labels: torch.Tensor, every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split items ``(N,)`` int64 labels into (train, held-out) index tensors: of each class with >= 2 items, the
    last ``max(1, round(n / every))`` in order are held out; unlabelled items (< 0) are in neither."""
    if every < 2:
        raise ValueError(f'--probe-holdout must be >= 2, got {every}')
    train, held = [], []
    for c in labels[labels >= 0].unique().tolist():
        idx = (labels == c).nonzero().flatten()
        k = max(1, round(len(idx) / every)) if len(idx) >= 2 else 0
        train.append(idx[:len(idx) - k])
        held.append(idx[len(idx) - k:])
    if not held or not sum(len(h) for h in held):
        raise ValueError('--probe-holdout: no class has two items; nothing to evaluate the probe on')
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def probe_holdout(train_dir: str, out: str, args: argparse.Namespace) -> dict:
    """Linear probe trained and evaluated within one split's shards (:func:`holdout_indices`); writes ``out``."""
    from transvae.engine.atomic_io import atomic_write_text
    from transvae.evaluation.linear_probe import train_probe
    from transvae.utils.latent_shards import list_shards, read_shard
    shards = [read_shard(p, keys=('latents', 'latents_flip', 'labels')) for p in list_shards(train_dir, complete=True)]
    z, zf, y = (torch.cat([s[k] for s in shards]) for k in ('latents', 'latents_flip', 'labels'))
    tr, ho = holdout_indices(y, args.probe_holdout)
    res = train_probe(z[tr], y[tr], z[ho], y[ho], pool=args.pool, epochs=args.probe_epochs,
                      batch_size=args.probe_batch_size, num_classes=int(y.max()) + 1, train_flip=zf[tr],
                      seed=args.seed, device=args.device, progress=False)
    res = {k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in res.items()}
    res.update(protocol=f'within the train split, last 1/{args.probe_holdout} of each class held out',
               num_train=len(tr), num_heldout=len(ho),
               majority_top1=100.0 * float(torch.bincount(y[ho]).max()) / len(ho))
    atomic_write_text(out, json.dumps(res, indent=2))
    return res


def analyze_model(name: str, config: str, ckpt: str, args: argparse.Namespace) -> dict:
    root = osp.join(args.work_dir, name)
    val_dir = extract_split(config, ckpt, args.eval_split, osp.join(root, f'latents_{args.eval_split}'), args,
                            flip=True)
    res = dict(config=config, checkpoint=ckpt, vf_target=vf_target(config, args.preset))
    res['latent_stats'] = _json_of('analysis_tools/latent_stats.py', osp.join(root, 'latent_stats.json'), val_dir,
                                   '--num-samples', str(args.num_samples), '--runs', str(args.runs),
                                   '--seed', str(args.seed))
    if not args.skip_probe:
        train_dir = val_dir if args.eval_split == 'train' else extract_split(
            config, ckpt, 'train', osp.join(root, 'latents_train'), args, flip=True)  # one extraction per split
        if args.probe_holdout:
            res['linear_probe'] = probe_holdout(train_dir, osp.join(root, 'linear_probe.json'), args)
        else:
            res['linear_probe'] = _json_of('analysis_tools/linear_probe.py', osp.join(root, 'linear_probe.json'),
                                           train_dir, val_dir, '--pool', args.pool,
                                           '--epochs', str(args.probe_epochs),
                                           '--batch-size', str(args.probe_batch_size), '--seed', str(args.seed),
                                           '--device', args.device)
    return res


def _target_label(target: dict | None) -> str:
    if target is None:
        return 'none'
    return f"{target['name']} -- PROXY, not the paper's DINOv2" if target['is_proxy'] else target['name']


def markdown(results: dict) -> str:
    targets = sorted({_target_label(r.get('vf_target')) for r in results.values()} - {'none'})
    proxy = any((r.get('vf_target') or {}).get('is_proxy') for r in results.values())
    head = 'VF loss target (PROXY)' if proxy else 'VF loss target'
    holdout = any('majority_top1' in r.get('linear_probe', {}) for r in results.values())
    lines = [f"{head}: {'; '.join(targets) or 'none'}", '',
             f'| Model | VF target | Linear-probe top-1{" (majority class)" if holdout else ""} | Density CV ↓ | '
             'Norm. entropy ↑ | Gini ↓ |', '|---|---|---|---|---|---|']
    for name, r in results.items():
        m = r['latent_stats']['mean']
        lp = r.get('linear_probe')
        top1 = '-' if lp is None else f"{lp['top1']:.2f}" + (f" ({lp['majority_top1']:.2f})" if holdout else '')
        lines.append(f"| {name} | {_target_label(r.get('vf_target'))} | {top1} | {m['density_cv']:.3f} | "
                     f"{m['normalized_entropy']:.4f} | {m['gini']:.3f} |")
    return '\n'.join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Latent statistics + linear probe, with vs without the VF loss')
    p.add_argument('--with', dest='with_vf', nargs=2, metavar=('CONFIG', 'CKPT'), required=True)
    p.add_argument('--without', dest='without_vf', nargs=2, metavar=('CONFIG', 'CKPT'), required=True)
    p.add_argument('--work-dir', required=True)
    p.add_argument('--data-root')
    p.add_argument('--preset')
    p.add_argument('--eval-split', default='test', choices=['val', 'test', 'train'],
                   help='split of the latent statistics (and of the probe evaluation without --probe-holdout); '
                        "'train' only with --probe-holdout (e.g. the bundled photos: 165 train vs 8 val photos, and "
                        'the statistics take one vector per image)')
    p.add_argument('--resolution', type=int)
    p.add_argument('--shard-size', type=int, default=10000)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--num-workers', type=int, default=2)
    p.add_argument('--max-items', type=int, help='first N items of each split (quick runs)')
    p.add_argument('--num-samples', type=int, default=10000)
    p.add_argument('--runs', type=int, default=10)
    p.add_argument('--skip-probe', action='store_true')
    p.add_argument('--probe-holdout', type=int, metavar='K',
                   help='probe within the train split (splits with disjoint classes, e.g. the bundled photos\' '
                        'sources): hold out the last 1/K of every class with >= 2 items')
    p.add_argument('--pool', default='gap', choices=['gap', 'flatten'])
    p.add_argument('--probe-epochs', type=int, default=90)
    p.add_argument('--probe-batch-size', type=int, default=1024)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='passed to tools/extract_latents.py: allow checkpoints that need arbitrary unpickling')
    args = p.parse_args(argv)
    if args.eval_split == 'train' and not args.probe_holdout and not args.skip_probe:
        p.error('--eval-split train needs --probe-holdout (or --skip-probe): the probe would be evaluated on its '
                'own training latents')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    results = {'with VF': analyze_model('with_vf', *args.with_vf, args),
               'without VF': analyze_model('without_vf', *args.without_vf, args)}
    from transvae.engine.atomic_io import atomic_write_text
    atomic_write_text(osp.join(args.work_dir, 'vf_analysis.json'), json.dumps(results, indent=2))
    print(markdown(results))
    return results


if __name__ == '__main__':
    main()
