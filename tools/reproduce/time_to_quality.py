"""Time to quality: held-out PSNR / LPIPS against training time, micro TransVAE vs a CNN-VAE of its size.

Both on the main job's recipe (configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py, its 1250 iterations,
held-out photos at 256²), validated every ``--val-interval`` iterations. Quality after k iterations does not depend
on the machine's load, the logged wall-clock does: the figure puts quality(k) at k × s/it, with the seconds per
training iteration of both models measured in one process, interleaved (transvae.studies.speed). Measure on a quiet
machine (pause other jobs); the logged wall-clock curves are kept in the bottom row, labelled with their load.

    .venv/bin/python tools/reproduce/time_to_quality.py --seeds 0 1 --threads 1  # train, measure s/it (once), plot
    .venv/bin/python tools/reproduce/time_to_quality.py --speed-only --threads 1  # only measure s/it -> step_times.json
    .venv/bin/python tools/reproduce/time_to_quality.py --no-train  # plot what the work dirs hold
    .venv/bin/python tools/reproduce/time_to_quality.py --study fig1 --root work_dirs/reproduce/fig1 --no-train \
        --only transvae cnn_vae --threads 1 --out work_dirs/reproduce/time_to_quality/fig1_pair   # finished runs

The step timed is the one each variant's seed-0 run recorded (done.json / driver.log), else the one the driver
would run with these options.

Writes ``step_times.json``, ``time_to_quality.png`` and ``time_to_quality.md`` under ``--out`` (default ``--root``,
beside the study's curves.png / results.md).
"""
import argparse
import os
import os.path as osp
import shlex
import sys

from transvae.studies.cli import add_study_args, main_for_study, run_options
from transvae.studies.figures import STUDIES
from transvae.studies.logs import collect
from transvae.studies.plots import plot_time_to_quality
from transvae.studies.speed import STEP_TIMES, StepTimes, measure_step_times, time_to_quality_markdown


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_args(parser, default_root='work_dirs/reproduce/time_to_quality', default_preset=None)
    parser.set_defaults(val_interval=125)
    parser.add_argument('--study', choices=sorted(STUDIES), default='time_to_quality',
                        help='the study whose variants are compared (default time_to_quality)')
    parser.add_argument('--out', default=None, help='folder of the outputs (default: --root)')
    parser.add_argument('--speed-only', action='store_true', help='measure the s/it of the variants and stop')
    parser.add_argument('--remeasure', action='store_true', help=f'measure again although {STEP_TIMES} exists')
    parser.add_argument('--speed-repeats', type=int, default=15, help='timed steps per variant (interleaved)')
    parser.add_argument('--speed-warmup', type=int, default=3, help='untimed steps per variant first')
    args = parser.parse_args(argv)
    root = osp.abspath(args.root)
    out = osp.abspath(args.out or args.root)
    study = STUDIES[args.study]
    if args.study != 'time_to_quality' and not (args.no_train or args.speed_only):
        parser.error(f'{args.study} is trained and reported by its own tool; pass --no-train')
    if args.study == 'time_to_quality' and not args.speed_only:
        main_for_study(study, args)
    variants = study.select(args.only)
    path = osp.join(out, STEP_TIMES)
    if args.speed_only or args.remeasure or not osp.isfile(path):
        load = os.getloadavg()[0]
        print(f'[speed] measuring the step time of {[v.label for v in variants]} (load average {load:.1f}; '
              'other jobs make every step slower, the interleaving keeps the ratio fair)', flush=True)
        st = measure_step_times(study, root, run_options(args), repeats=args.speed_repeats,
                                warmup=args.speed_warmup, threads=args.threads, labels=args.only,
                                seed=args.seeds[0], command=shlex.join([sys.executable, *sys.argv]))
        st.save(path)
    st = StepTimes.load(path)
    print(st.summary())
    if args.speed_only:
        return
    runs = collect(variants, root)
    md = time_to_quality_markdown(study, runs, st)
    with open(osp.join(out, 'time_to_quality.md'), 'w') as f:
        f.write(md)
    print(md)
    print('plot:', plot_time_to_quality(study, runs, osp.join(out, 'time_to_quality.png'), st.medians()))


if __name__ == '__main__':
    main()
