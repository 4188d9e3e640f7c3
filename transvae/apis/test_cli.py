"""The ``tools/test.py`` command line: evaluate checkpoints and write a reconstruction report.

Single model (the MMEngine Runner's test loop on the config's own test set, as before)::

    python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--report report.md] [--show-dir DIR]

Several models side by side, on datasets x resolutions (one Runner test loop per model x setting, so
``tools/dist_test.sh`` / ``--launcher pytorch`` works the same)::

    python tools/test.py --models CFG[:CKPT] CFG[:CKPT] ... [--labels A B ...] \\
        --datasets imagenet=data/imagenet/val coco=data/coco/val2017 --resolutions 256 512 1024 \\
        [--max-images N] --report report.md --out report.json

``CKPT`` may be omitted (or ``none``) for models that load their own weights (a
``Pretrained`` ``init_cfg``). A model that would be evaluated with random initial weights is
refused unless ``--random-weights`` is given (``tools/test.py CONFIG --random-weights``); the report then says so in
its title, its JSON (``weights``, ``random_weights``) and its first warning.

Output paths (``--out``, ``--report``, ``--show-dir``, ``--work-dir``) are checked before anything is built
(:func:`transvae.utils.output_paths.check_outputs`): an output that is the config, a checkpoint or lies inside a
data root, or that cannot be written (read-only folder), is an ``error:`` within seconds, not after the evaluation.
Dataset layouts come from the name's prefix: ``imagenet*`` (class sub-folders of the val split), ``coco*`` (flat
val2017 folder), ``photos*`` (the bundled photo set, its ``val`` split), anything else: ``ImageFolderDataset``
with ``layout='auto'``. Each resolution R: resize short side to R (bicubic) + centre crop RxR, posterior mean; the
metrics are PSNR / SSIM / LPIPS-alex / rFID (``FIDMetric``). With ``--preset cpu`` and no ``--datasets`` the
bundled photos are used (``photos=data/sample_photos``, resolution 128 unless ``--resolutions``).

Prints the metrics (one JSON line prefixed with ``metrics:`` in single-model mode, one ``metrics[label|dataset|R]:``
line per setting otherwise); ``--out`` writes the JSON report (the single-model JSON also keeps its historical
top-level ``config`` / ``checkpoint`` / ``metrics`` keys), ``--report`` the Markdown report
(:mod:`transvae.evaluation.report`).

This module is the command line: the configs and runners come from the entry layer (:mod:`transvae.apis.entry`:
preset, ``--data-root``, checked ``--cfg-options``, the same checks as ``tools/train.py``); what is evaluated and
how it is described (settings, dataset layouts, test configs, the report) is :mod:`transvae.evaluation.protocol` /
:mod:`transvae.evaluation.layouts`; the counts come from :class:`~transvae.engine.hooks.EvalCountHook`.

``--tile {none,auto,N}`` / ``--tile-mode {exact,blend}`` go to ``model.enable_tiling(tile=..., mode=...)``
(:mod:`transvae.models.autoencoders.tiling`); a model without ``enable_tiling`` is evaluated untiled and the
report says so.
"""
# Checkpoints load with torch.load(weights_only=True) (transvae.engine.checkpoint_io); --trust-checkpoint opts in to
# arbitrary unpickling for a file you trust.
from __future__ import annotations

import argparse
import gc
import json
import os
import os.path as osp
import shlex
import sys
import warnings
from typing import Any

import torch
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process

from transvae.apis.entry import apply_own_weights, build_runner, load_config
from transvae.apis.setup_env import register_all_modules
from transvae.engine.fsdp import fsdp_config_for_eval
from transvae.engine.hooks import EvalCountHook
from transvae.engine.dist_setup import init_cpu_distributed, shutdown_distributed
from transvae.evaluation import protocol as pr
from transvae.evaluation import report as rp
from transvae.evaluation.layouts import parse_datasets
from transvae.utils.allocator import tune_cpu_allocator
from transvae.utils.cli_types import non_negative_int, positive_int
from transvae.utils.output_paths import check_outputs


def _tile_arg(value: str) -> str:
    if value in ('none', 'auto') or (value.isdigit() and int(value) > 0):
        return value
    raise argparse.ArgumentTypeError(f"--tile must be 'none', 'auto' or a positive int, got {value!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments of ``tools/test.py`` (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description='Test (evaluate) transvae checkpoints; several models x datasets x resolutions with --models',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', help='config file path (single-model mode)')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint file (single-model mode; omitted or "none": the model\'s own weights, '
                        'or random ones with --random-weights)')
    parser.add_argument('--random-weights', action='store_true',
                        help='evaluate a model without a checkpoint even though its weights are then the random '
                        'initialisation (refused otherwise); the report says so')
    parser.add_argument('--work-dir', help='directory for the test logs')
    parser.add_argument('--out', help='write the metrics / the JSON report to this file')
    parser.add_argument('--report', help='write a Markdown report (tables, protocol, warnings) to this file')
    parser.add_argument('--show-dir', help='write input | reconstruction PNGs of every test image here '
                        '(multi-model mode: in <show-dir>/<label>/<dataset>_<R>/)')
    parser.add_argument('--preset', help='merge cfg.presets[PRESET] into the config (e.g. cpu)')
    parser.add_argument('--data-root', help='data_root of the datasets')
    parser.add_argument('--models', nargs='+', metavar='CFG[:CKPT]',
                        help='evaluate several models side by side (CKPT omitted or "none": the model loads its '
                        'own weights)')
    parser.add_argument('--labels', nargs='+', help='model labels for the report (default: config names)')
    parser.add_argument('--datasets', nargs='+', metavar='NAME=PATH',
                        help='evaluation sets; layout by name prefix: imagenet (class sub-folders), coco (flat '
                        'val2017), photos (bundled photos), else auto')
    parser.add_argument('--resolutions', nargs='+', type=positive_int, metavar='R',
                        help='resize short side to R (bicubic) + centre crop RxR, for each R')
    parser.add_argument('--max-images', type=positive_int, metavar='N',
                        help='evaluate at most N images per dataset (evenly spaced over the sorted files; the '
                        'bundled photos: the first N)')
    parser.add_argument('--batch-size', type=positive_int,
                        help='test batch size per process (default: the config\'s)')
    parser.add_argument('--num-workers', type=non_negative_int,
                        help='test dataloader workers (default: the config\'s)')
    parser.add_argument('--lpips-net', choices=['alex', 'vgg'], default='alex',
                        help='LPIPS backbone of the multi-model evaluator (default alex)')
    parser.add_argument('--tile', type=_tile_arg, default='none', metavar='{none,auto,N}',
                        help='tiled encode/decode, passed to the model when it exposes a tiling option '
                        '(default none: whole image, the paper protocol)')
    parser.add_argument('--tile-mode', choices=['exact', 'blend'], default='exact',
                        help="exact: equals the whole-image result; blend: the approximate mode (any architecture)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys (applied last)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    parser.add_argument('--local_rank', '--local-rank', type=non_negative_int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.multi = bool(args.models or args.datasets or args.resolutions)
    if not args.multi and not args.config:
        parser.error('give CONFIG CHECKPOINT, or --models CFG[:CKPT] ... (with --datasets / --resolutions)')
    if args.multi and args.checkpoint is None and args.config and not args.models:
        parser.error('CONFIG without CHECKPOINT: use --models CFG[:CKPT]')
    if args.random_weights and pr.none_ckpt(args.checkpoint) is not None:
        parser.error(f'--random-weights evaluates without a checkpoint, but CHECKPOINT {args.checkpoint} was given: '
                     'drop one of the two')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


# ---------------------------------------------------------------------------------------------------------------------
# configs and runners
# ---------------------------------------------------------------------------------------------------------------------
def _load_config(config: str, args: argparse.Namespace, strict_preset: bool = True) -> Config:
    """The config of one evaluated model (:func:`transvae.apis.entry.load_config`), unsharded, with the launcher."""
    cfg = load_config(config, args.preset, args.cfg_options, data_root=args.data_root, strict_preset=strict_preset)
    # an FSDP training config (its checkpoints are full state dicts) is evaluated by the default runner, unsharded
    fsdp_config_for_eval(cfg)
    cfg.launcher = args.launcher
    return cfg


def build_config(args: argparse.Namespace) -> Config:
    """Single-model mode: the config after preset, ``--data-root`` and ``--cfg-options``; ``load_from`` set."""
    cfg = _load_config(args.config, args)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return pr.single_model_config(cfg, args.checkpoint, show_dir=args.show_dir,
                                  max_images=getattr(args, 'max_images', None),
                                  batch_size=getattr(args, 'batch_size', None),
                                  num_workers=getattr(args, 'num_workers', None))


def _unwrap(model):
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def apply_tiling(model, tile: str, mode: str = 'exact') -> str:
    """``model.enable_tiling(tile=..., mode=...)`` (or ``disable_tiling()``); returns the protocol line."""
    m = _unwrap(model)
    value: Any = None if tile == 'none' else ('auto' if tile == 'auto' else int(tile))
    if value is None:
        if callable(getattr(m, 'disable_tiling', None)):
            m.disable_tiling()
        return 'none (whole image at once)'
    if callable(getattr(m, 'enable_tiling', None)):
        m.enable_tiling(tile=value, mode=mode)
        return f'{tile} ({mode} tiling, model.enable_tiling)'
    msg = (f'--tile {tile} requested but {type(m).__name__} has no enable_tiling(): evaluated WITHOUT tiling')
    warnings.warn(msg)
    return msg


def check_output_paths(args: argparse.Namespace, work_dir: str, models: list[tuple[str, Any]],
                       data_roots: list[tuple[str, str]]) -> None:
    """Refuse ``--out`` / ``--report`` / ``--show-dir`` / the work dir when one is an input (config, checkpoint),
    lies inside a data root or cannot be written: before any model, dataset or evaluation (``OutputPathError``).

    Args:
        args: the parsed arguments.
        work_dir: the (root) work dir of the test logs.
        models: ``(config, checkpoint or None)`` of every evaluated model.
        data_roots: ``(name, path)`` of every dataset read.
    """
    inputs: dict[str, Any] = {}
    for i, (config, ckpt) in enumerate(models):
        tag = '' if len(models) == 1 else f' of model {i + 1}'
        inputs[f'config{tag}'] = config
        inputs[f'checkpoint{tag}'] = pr.none_ckpt(ckpt)
    for name, root in data_roots:
        inputs[f'data root ({name})'] = root
    check_outputs({'--out': args.out, '--report': args.report, '--show-dir': args.show_dir, '--work-dir': work_dir},
                  inputs, dirs=['--show-dir', '--work-dir'])


def run_test(cfg: Config, launcher: str, tile: str,
             tile_mode: str = 'exact') -> tuple[dict, int, list[str], str, Any]:
    """Build the runner of ``cfg`` and run its test loop.

    Returns ``(metrics, N evaluated, skipped files, tiling protocol line, runner)``.
    """
    init_cpu_distributed(cfg, launcher)
    runner = build_runner(cfg)
    counter = EvalCountHook()
    runner.register_hook(counter)
    if pr.none_ckpt(cfg.get('load_from', None)) is None:
        apply_own_weights(_unwrap(runner.model), cfg.model)
    tiling = apply_tiling(runner.model, tile, tile_mode)
    metrics = {k: _jsonable(v) for k, v in (runner.test() or {}).items()}
    n, skipped = counter.totals()
    return metrics, n, skipped, tiling, runner


def _jsonable(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v if isinstance(v, (str, int, bool, type(None), list, dict)) else str(v)


def _command(argv) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return 'tools/test.py ' + ' '.join(shlex.quote(str(a)) for a in args)


# ---------------------------------------------------------------------------------------------------------------------
# the two modes
# ---------------------------------------------------------------------------------------------------------------------
def run_single(args: argparse.Namespace, argv=None) -> dict:
    from transvae.engine.config_surgery import dataset_roots
    cfg = build_config(args)
    # before anything is built: random weights only on purpose (WeightsSourceError), outputs that destroy no input
    weights = pr.check_weights(cfg.get('model', None), args.checkpoint, args.random_weights, args.config)
    check_output_paths(args, cfg.work_dir, [(args.config, args.checkpoint)], dataset_roots(cfg))
    if is_main_process():
        print(f"weights: {weights['detail']}", flush=True)
    pr.strip_training_modules(cfg)  # VF foundation model / discriminator are not needed to evaluate reconstructions
    metrics, n, skipped, tiling, runner = run_test(cfg, args.launcher, args.tile, args.tile_mode)
    try:  # DDP's DefaultSampler pads with duplicates up to a multiple of the world size
        n = min(n, len(runner.test_dataloader.dataset) - len(skipped))
    except TypeError:
        pass
    if is_main_process():
        print('metrics: ' + json.dumps(metrics, sort_keys=True), flush=True)
        if args.report or args.out:
            report = pr.single_report(cfg, args.config, args.checkpoint, metrics, n, skipped, tiling, _command(argv),
                                      max_images=args.max_images, show_dir=args.show_dir, weights=weights)
            legacy = dict(config=args.config, checkpoint=args.checkpoint, metrics=metrics)
            rp.write_report(report, args.report, args.out, json_extra=legacy)
            if args.report:
                print(f'report: {args.report}', flush=True)
    return metrics


def run_multi(args: argparse.Namespace, argv=None) -> dict:
    try:
        specs = [pr.parse_model_spec(s) for s in (args.models or [])]
        if args.config:  # positional CONFIG [CHECKPOINT] is the first model
            specs.insert(0, (args.config, pr.none_ckpt(args.checkpoint)))
        if not specs:
            raise ValueError('no model: give --models CFG[:CKPT] ...')
        labels = pr.model_labels([c for c, _ in specs], args.labels)
        datasets = parse_datasets(args.datasets) if args.datasets else None
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    root_wd = args.work_dir or osp.join('./work_dirs', 'benchmark')
    cfgs = [_load_config(c, args, strict_preset=False) for c, _ in specs]
    settings = pr.expand_settings(cfgs[0].test_dataloader.dataset, datasets, list(args.resolutions or []),
                                  args.max_images, args.preset)
    # before anything is built: random weights only on purpose (WeightsSourceError), outputs that destroy no input
    weights = {label: pr.check_weights(c.get('model', None), ckpt, args.random_weights and ckpt is None, cfg_path)
               for label, (cfg_path, ckpt), c in zip(labels, specs, cfgs)}
    check_output_paths(args, root_wd, specs, [(s.name, s.path) for s in settings if s.path])

    results: dict[tuple, dict] = {}
    counts: dict[tuple, tuple[int, list[str]]] = {}
    tiling_lines: set[str] = set()
    removed_any: dict[str, list[str]] = {}
    for label, (_, ckpt), base_cfg in zip(labels, specs, cfgs):
        for s in settings:
            cfg, removed = pr.setting_config(base_cfg, label, s, ckpt, work_dir=root_wd, lpips_net=args.lpips_net,
                                             max_images=args.max_images, batch_size=args.batch_size,
                                             num_workers=args.num_workers, show_dir=args.show_dir)
            if removed:
                removed_any[label] = removed
            metrics, n, skipped, tiling, runner = run_test(cfg, args.launcher, args.tile, args.tile_mode)
            tiling_lines.add(tiling)
            counts[(s.name, s.resolution)] = (n, skipped)
            results[(label, s.name, s.resolution)] = metrics
            if is_main_process():
                print(f'metrics[{label}|{s.name}|{s.resolution or "cfg"}]: ' + json.dumps(metrics, sort_keys=True),
                      flush=True)
            del runner
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    models = [dict(label=lb, config=c, checkpoint=k) for lb, (c, k) in zip(labels, specs)]
    report = pr.multi_report(models, settings, results, counts, lpips_net=args.lpips_net,
                             tiling='; '.join(sorted(tiling_lines)), command=_command(argv),
                             max_images=args.max_images, removed=removed_any, preset=args.preset,
                             show_dir=args.show_dir, weights=weights)
    if is_main_process():
        rp.write_report(report, args.report, args.out)
        if args.report:
            print(f'report: {args.report}', flush=True)
        if args.out:
            print(f'json report: {args.out}', flush=True)
    return report


def main(argv: list[str] | None = None) -> dict:
    """``tools/test.py``: parse, evaluate one model (``metrics``) or several (the report)."""
    args = parse_args(argv)
    register_all_modules()
    if not torch.cuda.is_available():
        tune_cpu_allocator()  # large activations reuse heap memory (TRANSVAE_MALLOC_MMAP_THRESHOLD_MB=0: off)
    from transvae.engine.checkpoint_io import trusted_checkpoints
    from transvae.engine.config_validation import config_errors
    with trusted_checkpoints(args.trust_checkpoint), config_errors(exit_on_error=True):
        result = run_multi(args, argv) if args.multi else run_single(args, argv)
    shutdown_distributed()
    return result

