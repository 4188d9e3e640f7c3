"""The ``tools/extract_latents.py`` command line: posterior means of a dataset into safetensors shards (for
LightningDiT training, latent statistics, probes).

``python tools/extract_latents.py CONFIG CKPT --out DIR [--data-root R] [--split test|val|train] [--flip]
[--shard-size N] [--resolution R] [--batch-size B] [--preset cpu] [--rank K --world-size W]
[--stats-convention transvae|lightningdit]``

* The config is resolved by the entry layer (:func:`transvae.apis.entry.load_config`: preset, ``--data-root``,
  checked ``--cfg-options``, the same checks as ``tools/train.py``); the dataset is the config's
  ``<split>_dataloader.dataset`` (default: test) with its test pipeline; ``--resolution`` changes every crop /
  resize size of that pipeline.
* ``CKPT`` is an mmengine checkpoint (its ``state_dict``: EMA weights when trained with ``EMAHook``), or ``none``
  for a model that loads its own weights (a ``Pretrained`` ``init_cfg``); random weights only with
  ``--random-weights``.
* Output: ``DIR/latents_{i:05d}.safetensors`` shards, ``DIR/latents_provenance.json`` and, once every shard exists,
  ``DIR/latents_stats.safetensors`` (the format: :mod:`transvae.utils.latent_shards`; the extraction, resume,
  provenance and statistics: :mod:`transvae.apis.latents`), computed in ``--stats-convention``
  (:mod:`transvae.utils.latent_statistics`: ``transvae``, every latent and its flip, population std, the default;
  ``lightningdit``, the official unflipped latents and unbiased std). The official LightningDiT layout of the same
  folder: ``tools/model_converters/latents_to_official.py DIR OUT``. An interrupted run is resumed by running the same
  command again; a resume with another checkpoint, config, split, resolution, flip or shard layout is refused.
* Refused before any shard is written: an ``--out`` that is, lies inside or contains an input, or cannot be written;
  a checkpoint with a NaN / Inf weight. A batch of non-finite latents is never written.
* ``--rank K --world-size W`` processes shards ``i % W == K`` (run W processes, e.g. one per GPU); the last to finish
  writes the statistics.
* One extraction per rank owns ``DIR`` (``DIR/extract_latents.rank{K}.lock``, held while it runs): a second one of
  the same rank exits with ``error:`` naming the first; a lock left by a killed run is taken over.
"""
# Checkpoints load with torch.load(weights_only=True) (transvae.engine.checkpoint_io); --trust-checkpoint opts in to
# arbitrary unpickling for a file you trust.
from __future__ import annotations

import argparse
from typing import Optional

import torch
from mmengine.config import Config, DictAction

from transvae.apis.entry import load_config
from transvae.apis.latents import extract_latents, own_out_dir, weights_source
from transvae.utils.cli_types import non_negative_int, positive_int
from transvae.utils.latent_shards import STATS_FILE, list_shards
from transvae.utils.latent_statistics import CONVENTIONS, DEFAULT_CONVENTION


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments of ``tools/extract_latents.py`` (``argv`` defaults to ``sys.argv[1:]``)."""
    p = argparse.ArgumentParser(description='Extract VAE posterior means into safetensors shards')
    p.add_argument('config')
    p.add_argument('checkpoint', help='mmengine checkpoint, or "none" (the model loads its own weights: '
                   'a Pretrained init_cfg; random weights only with --random-weights)')
    p.add_argument('--random-weights', action='store_true',
                   help='with checkpoint "none": allow a model that loads no weights of its own (random latents)')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--data-root', help='data_root of the dataset')
    p.add_argument('--split', default='test', choices=['train', 'val', 'test'],
                   help='which <split>_dataloader.dataset of the config to use (always with the test pipeline)')
    p.add_argument('--flip', action='store_true', help='also store latents of the h-flipped images')
    p.add_argument('--shard-size', type=positive_int, default=10000, help='dataset items per shard')
    p.add_argument('--resolution', type=positive_int, help='crop / resize size of the dataset pipeline')
    p.add_argument('--batch-size', type=positive_int, default=32)
    p.add_argument('--num-workers', type=non_negative_int, default=2)
    p.add_argument('--max-items', type=positive_int, help='only the first N dataset items')
    p.add_argument('--preset', help='merge cfg presets[PRESET] (e.g. cpu)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--rank', type=non_negative_int, default=0)
    p.add_argument('--world-size', type=positive_int, default=1)
    p.add_argument('--stats-convention', default=DEFAULT_CONVENTION, choices=sorted(CONVENTIONS),
                   help='how latents_stats.safetensors is computed: transvae (every latent and its flip, population '
                   'std) or lightningdit (the official: unflipped latents, unbiased std)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    args = p.parse_args(argv)
    if args.rank >= args.world_size:
        p.error(f'--rank {args.rank} must be smaller than --world-size {args.world_size}')
    return args


def load_args_config(args: argparse.Namespace) -> Config:
    """The config of ``args`` (preset, ``--data-root``, checked ``--cfg-options``)."""
    return load_config(args.config, args.preset, args.cfg_options, data_root=args.data_root)


def preflight(args: argparse.Namespace) -> Config:
    """Before the lock file, the model or any shard: the config resolves and passes its checks; random weights only
    with ``--random-weights``; an ``--out`` that is, lies inside or contains the config, the checkpoint or the data
    root, or cannot be written, is refused (``transvae.utils.output_paths``). Returns the config."""
    from transvae.engine.config_surgery import dataset_roots
    from transvae.utils.output_paths import check_outputs
    cfg = load_args_config(args)
    weights_source(cfg, args.checkpoint, args.random_weights, args.config)
    inputs = {'config': args.config, 'checkpoint': args.checkpoint}
    inputs.update({f'data root ({where})': root for where, root in dataset_roots(cfg)})
    check_outputs({'--out': args.out}, inputs, dirs=['--out'], exclusive=['--out'])
    return cfg


def run(args: argparse.Namespace, cfg: Optional[Config] = None) -> Optional[dict[str, torch.Tensor]]:
    """Extract (:func:`transvae.apis.latents.extract_latents`) and print what was written."""
    cfg = load_args_config(args) if cfg is None else cfg
    from transvae.evaluation.protocol import weights_info
    print(f"weights: {weights_info(cfg.get('model', None), args.checkpoint)['detail']}", flush=True)
    stats = extract_latents(cfg, args.checkpoint, args.out, config_path=args.config, split=args.split,
                            flip=args.flip, shard_size=args.shard_size, resolution=args.resolution,
                            batch_size=args.batch_size, num_workers=args.num_workers, max_items=args.max_items,
                            device=args.device, rank=args.rank, world_size=args.world_size,
                            random_weights=args.random_weights, stats_convention=args.stats_convention)
    if stats is None:
        print(f'shards of other ranks are missing: {STATS_FILE} is written by the last rank to finish')
    else:
        print(f'{len(list_shards(args.out))} shards in {args.out}; channel mean |max| '
              f'{stats["mean"].abs().max():.4f}, std range [{stats["std"].min():.4f}, {stats["std"].max():.4f}] ({stats["convention"]} convention)')
    return stats


def main(argv: list[str] | None = None) -> Optional[dict[str, torch.Tensor]]:
    """``tools/extract_latents.py``: parse, check, own ``--out``, extract."""
    args = parse_args(argv)
    from transvae.engine.checkpoint_io import trusted_checkpoints
    from transvae.engine.config_validation import config_errors
    # every UserInputError (an --out over an input, a busy --out, a malformed shard, NaN weights, ...): one line
    with config_errors(exit_on_error=True):
        cfg = preflight(args)
        with own_out_dir(args.out, args.rank), trusted_checkpoints(args.trust_checkpoint):
            return run(args, cfg)
