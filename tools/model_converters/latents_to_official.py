"""Write a latent folder of ``tools/extract_latents.py`` in the official LightningDiT layout.

``python tools/model_converters/latents_to_official.py SRC OUT [--shard-size 10000]
[--stats-convention source|transvae|lightningdit] [--stats-max-items N] [--stats-seed S]``

``SRC`` is a complete folder of ``tools/extract_latents.py --flip`` with class labels; ``OUT`` gets
``latents_rank00_shard{s:03d}.safetensors`` (``latents``, ``latents_flip``, ``labels``, the official metadata) and
``latents_stats.pt``, which the official ``train.py`` / ``inference.py`` read (``ImgLatentDataset``), item ``k`` being
our item ``k``. The statistics: ``source`` (default) copies ``SRC/latents_stats.safetensors`` unchanged, so the
official DiT normalises exactly as our DiT and our exported VAE package do; ``transvae`` / ``lightningdit`` recompute
them in that convention (:mod:`transvae.utils.latent_statistics`; ``lightningdit`` with ``--stats-max-items 10000
--stats-seed S`` draws the official random subset). Our folders of the official layout are read by the DiT as they
are (:mod:`transvae.utils.latent_folders`). A refusal ends in one ``error:`` line (exit status 1).
"""
from __future__ import annotations

import argparse
import sys

from transvae.engine.config_validation import config_errors
from transvae.utils.cli_types import non_negative_int, positive_int
from transvae.utils.latent_folders import write_official_folder
from transvae.utils.latent_shards import list_shards
from transvae.utils.latent_statistics import CONVENTIONS, compute_latent_stats
from transvae.utils.output_paths import check_outputs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Write a tools/extract_latents.py folder in the official LightningDiT '
                                'layout (per-rank safetensors shards + latents_stats.pt)')
    p.add_argument('src', help='latent folder of tools/extract_latents.py (extracted with --flip)')
    p.add_argument('out', help='output folder (new, or without .safetensors / latents_stats.pt files)')
    p.add_argument('--shard-size', type=positive_int, default=10000, help='items per official shard')
    p.add_argument('--stats-convention', default='source', choices=['source'] + sorted(CONVENTIONS),
                   help='source: copy SRC/latents_stats.safetensors; otherwise recompute in that convention')
    p.add_argument('--stats-max-items', type=positive_int,
                   help='recompute over a random subset of N items (the official code: 10000)')
    p.add_argument('--stats-seed', type=non_negative_int, default=0, help='seed of that subset')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Convert; 0 on success (a refusal exits with one ``error:`` line)."""
    args = parse_args(argv)
    with config_errors(exit_on_error=True):
        check_outputs({'OUT': args.out}, {'SRC': args.src}, dirs=['OUT'], exclusive=['OUT'])
        stats = None
        if args.stats_convention != 'source':
            stats = compute_latent_stats(list_shards(args.src, complete=True), args.stats_convention,
                                         max_items=args.stats_max_items, seed=args.stats_seed)
        info = write_official_folder(args.src, args.out, shard_size=args.shard_size, stats=stats)
    conv = info['provenance']['stats'].get('convention', 'unrecorded')
    print(f"{info['num_items']} items in {len(info['shards'])} official shards -> {args.out} "
          f'(latents_stats.pt: {conv} convention)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
