"""The ``tools/train.py`` command line: argument parsing, the config it resolves, the runner it builds.

Order of config changes: ``--preset`` first, then the shortcut flags (``--data-root``, ``--batch-size``,
``--max-iters``/``--epochs``, ``--resolution``, ``--seed``, ``--deterministic``, ``--amp``), then ``--cfg-options``
(the most explicit wins). Kept in the package (not in the script) so that other code builds exactly the config a
training command trains, e.g. :func:`transvae.studies.speed.variant_config` from a study's recorded command line.
"""
# Checkpoints load with torch.load(weights_only=True) (transvae.engine.checkpoint_io); --trust-checkpoint opts in to
# arbitrary unpickling for a file you trust.
from __future__ import annotations

import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from transvae.engine.utils import (apply_preset, init_cpu_distributed, set_amp, set_data_root, set_epochs,
                                   set_max_iters, set_resolution, shutdown_distributed)
from transvae.utils import register_all_modules
from transvae.utils.allocator import tune_cpu_allocator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments of ``tools/train.py`` (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description='Train a transvae model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='auto|PATH',
                        help='resume from the latest checkpoint in work_dir (no value or "auto") or from PATH')
    parser.add_argument('--amp', action='store_true', help='mixed precision (SafeAmpOptimWrapper)')
    parser.add_argument('--amp-dtype', choices=['bfloat16', 'float16'], default=None,
                        help='autocast dtype (default bfloat16 on CPU and bf16-capable GPUs, else float16)')
    parser.add_argument('--preset', help='merge cfg.presets[PRESET] into the config (e.g. cpu)')
    parser.add_argument('--data-root', help='data_root of the train/val/test datasets')
    parser.add_argument('--batch-size', type=int, help='per-GPU training batch size')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--max-iters', type=int, help='train for this many iterations (IterBasedTrainLoop)')
    group.add_argument('--epochs', type=int, help='train for this many epochs (EpochBasedTrainLoop)')
    parser.add_argument('--resolution', type=int, help='crop/resize size of the train and val pipelines')
    parser.add_argument('--seed', type=int, help='random seed')
    parser.add_argument('--deterministic', action='store_true', help='deterministic cuDNN / algorithms')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. optim_wrapper.optimizer.lr=1e-4 (applied last)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow resuming / loading a checkpoint that needs arbitrary unpickling (can run code)')
    parser.add_argument('--resume-lr', type=float, metavar='LR',
                        help='with --resume: scale every learning rate (optimizer and schedulers) so that the first '
                        "param group's base lr becomes LR (a run aborted by the non-finite guard)")
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args: argparse.Namespace) -> Config:
    """The config after preset, shortcuts and ``--cfg-options`` (no side effects)."""
    from transvae.engine.config_validation import load_config
    cfg = load_config(args.config)  # a syntax error names the file and line
    if args.preset:
        try:
            apply_preset(cfg, args.preset)
        except KeyError as e:
            raise SystemExit(f'error: {e.args[0]}') from None
    if args.data_root:
        set_data_root(cfg, args.data_root)
    if args.batch_size:
        cfg.train_dataloader.batch_size = args.batch_size
    if args.max_iters:
        set_max_iters(cfg, args.max_iters)
    if args.epochs:
        set_epochs(cfg, args.epochs)
    if args.resolution:
        set_resolution(cfg, args.resolution)
    if args.seed is not None:
        cfg.setdefault('randomness', {})['seed'] = args.seed
    if args.deterministic:
        cfg.setdefault('randomness', {})['deterministic'] = True
    if args.amp:
        set_amp(cfg, args.amp_dtype)
    from transvae.engine.config_validation import check_top_level_keys, merge_cfg_options
    merge_cfg_options(cfg, args.cfg_options)
    check_top_level_keys(cfg)

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
    return cfg


def build_runner(cfg: Config) -> Runner:
    """mmengine's ``Runner`` for ``cfg``, or the registered ``runner_type`` (FSDP configs need ``FlexibleRunner``)."""
    if cfg.get('strategy', None) is not None:
        check_strategy_runner(cfg)
    if 'runner_type' in cfg:
        from transvae.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def check_strategy_runner(cfg: Config) -> None:
    """A ``strategy`` (e.g. FSDP) is read only by mmengine's ``FlexibleRunner``: refuse to ignore it silently."""
    from mmengine.runner import FlexibleRunner

    from transvae.registry import RUNNERS
    runner_type = cfg.get('runner_type', 'Runner')
    cls = RUNNERS.get(runner_type) if isinstance(runner_type, str) else runner_type
    if not (isinstance(cls, type) and issubclass(cls, FlexibleRunner)):
        raise SystemExit(f"error: the config sets `strategy` ({cfg.strategy.get('type')}), which only mmengine's "
                         f"FlexibleRunner uses, but runner_type={runner_type!r}. Set runner_type = "
                         "'FlexibleRunner' in the config (see configs/_base_/strategies/fsdp.py), or remove "
                         '`strategy`.')
    from transvae.engine.fsdp import check_fsdp_config
    try:
        check_fsdp_config(cfg)
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None


def main(argv: list[str] | None = None) -> None:
    """``tools/train.py``: parse, build the config and the runner, train."""
    args = parse_args(argv)
    register_all_modules()
    if not torch.cuda.is_available():
        tune_cpu_allocator()  # large activations reuse heap memory (TRANSVAE_MALLOC_MMAP_THRESHOLD_MB=0: off)
    from transvae.engine.checkpoint_io import trusted_checkpoints
    from transvae.engine.config_validation import config_errors
    with config_errors(exit_on_error=True):  # misspelt keys / keyword arguments: "did you mean"
        cfg = build_config(args)
        init_cpu_distributed(cfg, args.launcher)  # no-op with CUDA or without a launcher
        runner = build_runner(cfg)
        with trusted_checkpoints(args.trust_checkpoint):
            runner.train()
    shutdown_distributed()

