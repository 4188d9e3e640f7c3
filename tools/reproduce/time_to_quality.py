"""Time to quality: held-out PSNR / LPIPS against training wall-clock, micro TransVAE vs a CNN-VAE of its size.

Both on the main job's recipe (configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py, its 1250 iterations,
held-out photos at 256²), validated every ``--val-interval`` iterations; run both at once so they share the load.

    python tools/reproduce/time_to_quality.py --seeds 0 1 --threads 1

Writes ``time_to_quality.png`` beside the usual curves.png / results.md under ``--root``.
"""
import argparse
import os.path as osp

from transvae.studies.cli import add_study_args, main_for_study
from transvae.studies.figures import TIME_TO_QUALITY
from transvae.studies.logs import collect
from transvae.studies.plots import plot_time_to_quality


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_args(parser, default_root='work_dirs/reproduce/time_to_quality', default_preset=None)
    parser.set_defaults(val_interval=125)
    args = parser.parse_args(argv)
    main_for_study(TIME_TO_QUALITY, args)
    root = osp.abspath(args.root)
    runs = collect(TIME_TO_QUALITY.variants, root)
    print('plot:', plot_time_to_quality(TIME_TO_QUALITY, runs, osp.join(root, 'time_to_quality.png')))


if __name__ == '__main__':
    main()
