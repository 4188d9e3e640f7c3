"""Linear probe on frozen VAE posterior means (PAPER.md §4.2 (a), Table 2; protocol unspecified there: Q8).

``python tools/analysis_tools/linear_probe.py TRAIN_LATENT_DIR VAL_LATENT_DIR [--pool gap|flatten] [--epochs 90]
[--cache-mb 4096]``

The latent directories are outputs of ``tools/extract_latents.py`` (``--split train`` and ``--split val``); the
protocol (features, classifier, optimisation, metric) and how the shards are held in memory or streamed are
:mod:`transvae.evaluation.linear_probe`.
"""
from __future__ import annotations

import argparse
import json

import torch

from transvae.evaluation.linear_probe import probe_dirs


def main(argv: list[str] | None = None) -> None:
    """Train the probe on TRAIN_LATENT_DIR, evaluate it on VAL_LATENT_DIR, print top-1 / top-5 (--out: JSON)."""
    p = argparse.ArgumentParser(description='Linear probe on frozen posterior means (top-1)')
    p.add_argument('train_dir')
    p.add_argument('val_dir')
    p.add_argument('--pool', default='gap', choices=['gap', 'flatten'])
    p.add_argument('--epochs', type=int, default=90)
    p.add_argument('--batch-size', type=int, default=1024)
    p.add_argument('--base-lr', type=float, default=0.1, help='lr = base_lr * batch_size / 256')
    p.add_argument('--warmup-epochs', type=int, default=10)
    p.add_argument('--cache-mb', type=float, default=4096,
                   help='hold the training features in memory up to this size (MB, flips included), else stream '
                        'them from the shards every epoch (shard-level shuffling)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--out', help='write the result as JSON')
    args = p.parse_args(argv)
    res = probe_dirs(args.train_dir, args.val_dir, pool=args.pool, cache_mb=args.cache_mb, epochs=args.epochs,
                     batch_size=args.batch_size, base_lr=args.base_lr, warmup_epochs=args.warmup_epochs,
                     seed=args.seed, device=args.device)
    print(f"linear probe ({args.pool}): top-1 {res['top1']:.2f}  top-5 {res['top5']:.2f}  "
          f"({res['num_train']} train / {res['num_val']} val latents, {res['num_classes']} classes; "
          f"train features {res['data']}, {res['feature_mb']:.1f} MB)")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
