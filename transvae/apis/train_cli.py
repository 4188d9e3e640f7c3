"""The ``tools/train.py`` command line: argument parsing, the config it resolves, the training it starts.

The config and the runner come from the entry layer (:mod:`transvae.apis.entry`) that ``tools/test.py``,
``tools/extract_latents.py`` and ``init_model`` use too. Order of config changes: ``--preset`` first, then the
shortcut flags (``--data-root``, ``--batch-size``, ``--max-iters``/``--epochs``, ``--resolution``, ``--seed``,
``--deterministic``, ``--amp``), then ``--cfg-options`` (the most explicit wins). Kept in the package (not in the
script) so that other code builds exactly the config a training command trains (:func:`build_config` from a
recorded command line).

Checks before the runner is built: every numeric option has an argparse type (:mod:`transvae.utils.cli_types`: a
zero or negative ``--max-iters`` / ``--batch-size`` / ``--epochs`` / ``--resolution`` is a usage error, exit 2), the
well-known numeric config keys hold numbers (:func:`~transvae.engine.config_validation.check_config_values`), and the
work dir is no input (:func:`transvae.utils.output_paths.check_outputs`). ``--resume`` is checked against the
checkpoint (:mod:`transvae.engine.resume_checks`): another model config is refused unless
``--resume-allow-config-change``; a finished run prints "nothing to train" and exits 0; a checkpoint past the end of
the schedule or a weights-only export exits 1 with the reason.
"""
# Checkpoints load with torch.load(weights_only=True) (transvae.engine.checkpoint_io); --trust-checkpoint opts in to
# arbitrary unpickling for a file you trust.
from __future__ import annotations

import argparse
import os
import os.path as osp

from collections.abc import Callable

import torch
from mmengine.config import Config, DictAction

from transvae.apis.entry import build_runner, load_config
from transvae.apis.setup_env import register_all_modules
from transvae.engine.config_surgery import set_amp, set_epochs, set_max_iters, set_resolution
from transvae.engine.dist_setup import init_cpu_distributed, shutdown_distributed
from transvae.utils.allocator import tune_cpu_allocator
from transvae.utils.cli_types import non_negative_int, positive_float, positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments of ``tools/train.py`` (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description='Train a transvae model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints (default: the config\'s work_dir, '
                        'else work_dirs/<config name>, or work_dirs/<config name>_<preset> with --preset)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='auto|PATH',
                        help='resume from the latest checkpoint in work_dir (no value or "auto") or from PATH; '
                        'refused when the checkpoint was trained with another model config')
    parser.add_argument('--resume-allow-config-change', action='store_true',
                        help='with --resume: resume even though the model config differs from the one the '
                        'checkpoint was trained with (the differing keys are logged)')
    parser.add_argument('--amp', action='store_true', help='mixed precision (SafeAmpOptimWrapper)')
    parser.add_argument('--amp-dtype', choices=['bfloat16', 'float16'], default=None,
                        help='autocast dtype (default bfloat16 on CPU and bf16-capable GPUs, else float16)')
    parser.add_argument('--preset', help='merge cfg.presets[PRESET] into the config (e.g. cpu)')
    parser.add_argument('--data-root', help='data_root of the train/val/test datasets')
    parser.add_argument('--batch-size', type=positive_int, help='per-GPU training batch size')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--max-iters', type=positive_int, help='train for this many iterations (IterBasedTrainLoop)')
    group.add_argument('--epochs', type=positive_int, help='train for this many epochs (EpochBasedTrainLoop)')
    parser.add_argument('--resolution', type=positive_int, help='crop/resize size of the train and val pipelines')
    parser.add_argument('--seed', type=non_negative_int, help='random seed')
    parser.add_argument('--deterministic', action='store_true', help='deterministic cuDNN / algorithms')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. optim_wrapper.optimizer.lr=1e-4 (applied last)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow resuming / loading a checkpoint that needs arbitrary unpickling (can run code)')
    parser.add_argument('--resume-lr', type=positive_float, metavar='LR',
                        help='with --resume: scale every learning rate (optimizer and schedulers) so that the first '
                        "param group's base lr becomes LR (a run aborted by the non-finite guard)")
    parser.add_argument('--local_rank', '--local-rank', type=non_negative_int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.resume_allow_config_change and args.resume is None:
        parser.error('--resume-allow-config-change needs --resume')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _shortcuts(args: argparse.Namespace) -> Callable[[Config], None]:
    """The shortcut flags of ``args`` as one config edit (applied after the preset, before ``--cfg-options``)."""
    def apply(cfg: Config) -> None:
        # `is not None`, never truthiness: a 0 that reached here must fail loudly in the checks, not be dropped
        if args.batch_size is not None:
            cfg.train_dataloader.batch_size = args.batch_size
        if args.max_iters is not None:
            set_max_iters(cfg, args.max_iters)
        if args.epochs is not None:
            set_epochs(cfg, args.epochs)
        if args.resolution is not None:
            set_resolution(cfg, args.resolution)
        if args.seed is not None:
            cfg.setdefault('randomness', {})['seed'] = args.seed
        if args.deterministic:
            cfg.setdefault('randomness', {})['deterministic'] = True
        if args.amp:
            set_amp(cfg, args.amp_dtype)
    return apply


def build_config(args: argparse.Namespace) -> Config:
    """The config after preset, shortcuts and ``--cfg-options``, checked (:func:`transvae.apis.entry.load_config`);
    then the work dir, ``--resume`` and the launcher (no side effects)."""
    cfg = load_config(args.config, args.preset, args.cfg_options, data_root=args.data_root,
                      shortcuts=_shortcuts(args))
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        name = osp.splitext(osp.basename(args.config))[0]
        cfg.work_dir = osp.join('./work_dirs', name + (f'_{args.preset}' if args.preset else ''))
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.resume_lr is not None:  # a resumed optimizer / scheduler would restore the checkpoint's lr
        if args.resume is None:
            raise SystemExit('error: --resume-lr needs --resume')
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [dict(type='ResumeLRHook', lr=args.resume_lr)]
    if getattr(args, 'resume_allow_config_change', False):
        cfg.resume_allow_config_change = True  # read by transvae.engine.resume_checks
    return cfg


def check_train_outputs(cfg: Config, config_path: str) -> None:
    """Refuse a work dir that is the config file, lies inside a data root or cannot be written (before the runner)."""
    from transvae.engine.config_surgery import dataset_roots
    from transvae.utils.output_paths import check_outputs
    inputs = {'config': config_path}
    inputs.update({f'data root of {where}': root for where, root in dataset_roots(cfg)})
    check_outputs({'--work-dir': cfg.work_dir}, inputs, dirs=['--work-dir'])


def main(argv: list[str] | None = None) -> None:
    """``tools/train.py``: parse, build the config and the runner, train."""
    args = parse_args(argv)
    register_all_modules()
    if not torch.cuda.is_available():
        tune_cpu_allocator()  # large activations reuse heap memory (TRANSVAE_MALLOC_MMAP_THRESHOLD_MB=0: off)
    from transvae.engine.checkpoint_io import trusted_checkpoints
    from transvae.engine.config_validation import config_errors
    from transvae.engine.resume_checks import RunFinished
    with config_errors(exit_on_error=True):  # misspelt keys / keyword arguments: "did you mean"
        cfg = build_config(args)
        check_train_outputs(cfg, args.config)
        init_cpu_distributed(cfg, args.launcher)  # no-op with CUDA or without a launcher
        runner = build_runner(cfg)
        with trusted_checkpoints(args.trust_checkpoint):
            try:
                runner.train()
            except RunFinished as e:  # --resume of a finished run: say so, exit 0 (re-running is harmless)
                from mmengine.dist import is_main_process
                if is_main_process():
                    print(str(e), flush=True)
    shutdown_distributed()

