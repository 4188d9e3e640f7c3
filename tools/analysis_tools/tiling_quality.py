"""Tiled vs whole-image reconstruction: PSNR(tiled, whole), peak memory and time per tiling mode, and SD-VAE's tiling.

Every run is a fresh worker process; what is measured, the attention proxy (``--stub-attention-from``) and the SD-VAE
extrapolation are :mod:`transvae.benchmark.tiling_quality`.

Example (one of the README table's runs; its CPU minutes depend mostly on the whole-image attention)::

    python tools/analysis_tools/tiling_quality.py configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py \\
        CHECKPOINT --quality-sizes 1024 --perf-sizes --tiles 512 --stub-attention-from 1024 --sdvae-sizes \\
        --out work_dirs/tiling_quality/q1024.json
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from transvae.benchmark.tiling_quality import TilingQualityOptions, run_tiling_quality, save_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', default=None, help='random weights if absent')
    p.add_argument('--trust-checkpoint', action='store_true', help='allow a checkpoint that needs full unpickling')
    p.add_argument('--preset', default=None, help='config preset used when the checkpoint was trained')
    p.add_argument('--photos', default='data/sample_photos/val', help='folder searched recursively')
    p.add_argument('--num-photos', type=int, default=2, help='photos per quality size (first N in sorted order)')
    p.add_argument('--one-photo-from', type=int, default=2048, help='sizes >= this use only the first photo')
    p.add_argument('--quality-sizes', type=int, nargs='*', default=[512, 1024, 2048])
    p.add_argument('--perf-sizes', type=int, nargs='*', default=[4096], help='tiled runs only (no whole reference)')
    p.add_argument('--tiles', type=int, nargs='+', default=[256, 512], help='tile sizes in pixels')
    p.add_argument('--modes', nargs='+', default=['exact', 'blend'], choices=['exact', 'blend'])
    p.add_argument('--stub-attention-from', type=int, default=4096)
    p.add_argument('--attention-probe-tokens', type=int, default=16384)
    p.add_argument('--sdvae-sizes', type=int, nargs='*', default=[1024, 2048, 4096])
    p.add_argument('--sdvae-full-up-to', type=int, default=1024)
    p.add_argument('--sdvae-max-tiles', type=int, default=2)
    p.add_argument('--out', default=None, help='JSON report (a Markdown table is written beside it)')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the measurements, print the table, write the report with --out."""
    args = parse_args(argv)
    names = {f.name for f in dataclasses.fields(TilingQualityOptions)}
    opts = TilingQualityOptions(**{k: v for k, v in vars(args).items() if k in names})
    report = run_tiling_quality(opts, command=' '.join(sys.argv))
    print(report['markdown'])
    if args.out:
        save_report(report, args.out)
    return report


if __name__ == '__main__':
    main()
