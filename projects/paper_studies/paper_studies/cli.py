"""The command line shared by ``tools/reproduce/*.py``: train a study's variants (resumable), then report it."""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Optional

from .run import RunOptions, run_study
from .study import Study

#: The main job's number of training images (schedule_cpu_10min.py: 1250 iterations of batch 16): every study
#: variant is trained on the same number of images by default.
MAIN_JOB_ITERS = 1250
MAIN_JOB_BATCH = 16


def add_study_args(parser: argparse.ArgumentParser, default_root: str, default_preset: Optional[str] = 'cpu'
                   ) -> argparse.ArgumentParser:
    parser.add_argument('--root', default=default_root, help=f'output root (default {default_root})')
    parser.add_argument('--preset', default=default_preset or 'none',
                        help="tools/train.py --preset ('cpu': micro run; 'none': the config as it is)")
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='seeds per variant (default 0 1)')
    parser.add_argument('--max-iters', type=int, default=MAIN_JOB_ITERS,
                        help=f'iterations per variant (default {MAIN_JOB_ITERS}: the main job)')
    parser.add_argument('--batch-size', type=int, default=MAIN_JOB_BATCH,
                        help=f'training batch (default {MAIN_JOB_BATCH}: the main job); 0 keeps the config\'s')
    parser.add_argument('--val-interval', type=int, default=250, help='validate every N iterations')
    parser.add_argument('--threads', type=int, default=None, help='OMP_NUM_THREADS of each run (default: inherited)')
    parser.add_argument('--gpus', type=int, default=1, help='processes per variant (>1: tools/dist_train.sh)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help="forwarded to tools/train.py --cfg-options (after the driver's own)")
    parser.add_argument('--only', nargs='+', default=None, metavar='LABEL', help='run only these variants')
    parser.add_argument('--force', action='store_true', help='retrain variants that have a done.json (resumes)')
    parser.add_argument('--no-train', action='store_true', help='only report what the work dirs hold')
    parser.add_argument('--approx-tol', type=float, default=0.03, help="relative difference counted as '≈'")
    parser.add_argument('--python', default=None, help='interpreter for tools/train.py (default: this one)')
    return parser


def run_options(args: argparse.Namespace) -> RunOptions:
    env = {'OMP_NUM_THREADS': args.threads} if args.threads else {}
    return RunOptions(seeds=tuple(args.seeds), preset=None if args.preset == 'none' else args.preset,
                      max_iters=args.max_iters or None, batch_size=args.batch_size or None,
                      val_interval=args.val_interval, gpus=args.gpus, launcher=args.launcher,
                      cfg_options=list(args.cfg_options), force=args.force, python=args.python, env=env)


def main_for_study(study: Study, args: argparse.Namespace) -> str:
    """Train (unless ``--no-train``) and report one study; prints and returns the report's Markdown."""
    from .report import report_study
    root = osp.abspath(args.root)
    os.makedirs(root, exist_ok=True)
    if args.only:
        study.select(args.only)  # unknown labels fail before any training
    if not args.no_train:
        run_study(study, root, run_options(args), args.only)
    text = report_study(study, root, tol=args.approx_tol)
    print(text)
    return text


def study_main(study: Study, default_root: str, argv: Optional[list[str]] = None, description: str = '',
               default_preset: Optional[str] = 'cpu') -> str:
    """The whole command line of a study tool: parse, train (resumable), report."""
    parser = add_study_args(argparse.ArgumentParser(description=description or study.name), default_root,
                            default_preset)
    return main_for_study(study, parser.parse_args(argv))


def train_one(argv: Optional[list[str]] = None) -> int:
    """Train one config with the study driver (seeds, done.json, resume) and print its final held-out values.

    ``python -m projects.paper_studies.paper_studies.cli CONFIG --label NAME --root ROOT [study flags]`` from the
    repository root (``tools/reproduce/train_all_scales.sh`` uses it)."""
    from .logs import collect, final_stats
    from .report import fmt_stats
    from .study import Variant
    parser = argparse.ArgumentParser(description='Train one config with the study driver (seeds, resume).')
    parser.add_argument('config', help='config path or experiment name')
    parser.add_argument('--label', default=None, help='work sub-directory (default: the config file stem)')
    add_study_args(parser, default_root='work_dirs/reproduce/misc')
    parser.set_defaults(seeds=[0])
    args = parser.parse_args(argv)
    v = Variant(args.label or osp.splitext(osp.basename(args.config))[0], args.config)
    root = osp.abspath(args.root)
    if not args.no_train:
        run_study(Study(v.label, 'single', [v]), root, run_options(args))
    runs = collect([v], root)[v.label]
    print(f'{v.label}: ' + '  '.join(f'{m} {fmt_stats(final_stats(runs, m))}'
                                     for m in ('vgg/rec_loss', 'alex/rec_loss', 'psnr', 'ssim', 'lpips')))
    return 0


def time_to_quality_parser(description: str = '') -> argparse.ArgumentParser:
    """The options of ``tools/reproduce/time_to_quality.py``: the study flags plus the step-time measurement's."""
    from .paper import STUDIES
    from .speed import STEP_TIMES
    parser = argparse.ArgumentParser(description=description or 'time to quality')
    add_study_args(parser, default_root='work_dirs/reproduce/time_to_quality', default_preset=None)
    parser.set_defaults(val_interval=125)
    parser.add_argument('--study', choices=sorted(STUDIES), default='time_to_quality',
                        help='the study whose variants are compared (default time_to_quality)')
    parser.add_argument('--out', default=None, help='folder of the outputs (default: --root)')
    parser.add_argument('--speed-only', action='store_true', help='measure the s/it of the variants and stop')
    parser.add_argument('--remeasure', action='store_true', help=f'measure again although {STEP_TIMES} exists')
    parser.add_argument('--speed-repeats', type=int, default=15, help='timed steps per variant (interleaved)')
    parser.add_argument('--speed-warmup', type=int, default=3, help='untimed steps per variant first')
    return parser


def time_to_quality_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Train the time-to-quality pair (unless ``--no-train``), measure their step times interleaved in one process
    (once; again with ``--remeasure``) and write ``time_to_quality.md`` / ``.png`` (quality after k iterations at
    k x the measured s/it). ``args``: parsed by ``parser`` (:func:`time_to_quality_parser`), which reports misuse."""
    import shlex
    import sys

    from .logs import collect
    from .paper import STUDIES
    from .plots import plot_time_to_quality
    from .speed import STEP_TIMES, StepTimes, measure_step_times, time_to_quality_markdown
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
    raise SystemExit(train_one())
