"""Evaluate checkpoints and write a reconstruction report.

Single model (the MMEngine Runner's test loop on the config's own test set, as before)::

    python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--report report.md] [--show-dir DIR]

Several models side by side, on datasets x resolutions (one Runner test loop per model x setting, so
``tools/dist_test.sh`` / ``--launcher pytorch`` works the same)::

    python tools/test.py --models CFG[:CKPT] CFG[:CKPT] ... [--labels A B ...] \\
        --datasets imagenet=data/imagenet/val coco=data/coco/val2017 --resolutions 256 512 1024 \\
        [--max-images N] --report report.md --out report.json

``CKPT`` may be omitted (or ``none``) for adapters that load their own weights (``DiffusersAutoencoderKL``).
Dataset layouts come from the name's prefix: ``imagenet*`` (class sub-folders of the val split), ``coco*`` (flat
val2017 folder), ``photos*`` (the bundled photo set, its ``val`` split), anything else: ``ImageFolderDataset``
with ``layout='auto'``. Each resolution R: resize short side to R (bicubic) + centre crop RxR, posterior mean; the
metrics are PSNR / SSIM / LPIPS-alex / rFID (``FIDMetric``). With ``--preset cpu`` and no ``--datasets`` the
bundled photos are used (``photos=data/sample_photos``, resolution 128 unless ``--resolutions``).

Prints the metrics (one JSON line prefixed with ``metrics:`` in single-model mode, one ``metrics[label|dataset|R]:``
line per setting otherwise); ``--out`` writes the JSON report (the single-model JSON also keeps its historical
top-level ``config`` / ``checkpoint`` / ``metrics`` keys), ``--report`` the Markdown report
(:mod:`transvae.evaluation.report`).

``--tile {none,auto,N}`` / ``--tile-mode {exact,blend}`` go to ``model.enable_tiling(tile=..., mode=...)``
(:mod:`transvae.models.autoencoders.tiling`); a model without ``enable_tiling`` is evaluated untiled and the
report says so.
"""
# Checkpoints load with torch.load(weights_only=True) (transvae.engine.checkpoint_io); --trust-checkpoint opts in to
# arbitrary unpickling for a file you trust.
import os

import argparse  # noqa: E402
import copy  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os.path as osp  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from typing import Any, Optional  # noqa: E402

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

import torch  # noqa: E402
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

from transvae.engine.fsdp import fsdp_config_for_eval  # noqa: E402
from transvae.engine.utils import (apply_preset, init_cpu_distributed, set_data_root,  # noqa: E402
                                   shutdown_distributed)
from transvae.utils import register_all_modules  # noqa: E402
from transvae.utils.allocator import tune_cpu_allocator  # noqa: E402

PHOTOS_ROOT = 'data/sample_photos'
LAYOUTS = ('imagenet', 'coco', 'photos')
#: training-only submodules of VAEGAN dropped for evaluation (the checkpoint's keys for them are ignored)
TRAIN_ONLY_MODEL_KEYS = ('vf_loss', 'discriminator', 'gan_loss')


def _tile_arg(value: str) -> str:
    if value in ('none', 'auto') or (value.isdigit() and int(value) > 0):
        return value
    raise argparse.ArgumentTypeError(f"--tile must be 'none', 'auto' or a positive int, got {value!r}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (evaluate) transvae checkpoints; several models x datasets x resolutions with --models',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', help='config file path (single-model mode)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (single-model mode; "none": no checkpoint)')
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
    parser.add_argument('--resolutions', nargs='+', type=int, metavar='R',
                        help='resize short side to R (bicubic) + centre crop RxR, for each R')
    parser.add_argument('--max-images', type=int, metavar='N',
                        help='evaluate at most N images per dataset (evenly spaced over the sorted files; the '
                        'bundled photos: the first N)')
    parser.add_argument('--batch-size', type=int, help='test batch size per process (default: the config\'s)')
    parser.add_argument('--num-workers', type=int, help='test dataloader workers (default: the config\'s)')
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.multi = bool(args.models or args.datasets or args.resolutions)
    if not args.multi and not (args.config and args.checkpoint):
        parser.error('give CONFIG CHECKPOINT, or --models CFG[:CKPT] ... (with --datasets / --resolutions)')
    if args.multi and args.checkpoint is None and args.config and not args.models:
        parser.error('CONFIG without CHECKPOINT: use --models CFG[:CKPT]')
    if args.max_images is not None and args.max_images <= 0:
        parser.error('--max-images must be positive')
    if args.resolutions and any(r <= 0 for r in args.resolutions):
        parser.error('--resolutions must be positive')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


# ---------------------------------------------------------------------------------------------------------------------
# config helpers
# ---------------------------------------------------------------------------------------------------------------------
def _none_ckpt(ckpt: Optional[str]) -> Optional[str]:
    return None if ckpt in (None, '', 'none', 'None') else ckpt


def _load_config(config: str, args: argparse.Namespace, strict_preset: bool = True) -> Config:
    cfg = Config.fromfile(config)
    if args.preset:
        try:
            apply_preset(cfg, args.preset)
        except KeyError as e:
            if strict_preset:
                raise SystemExit(f'error: {e.args[0]}') from None
            warnings.warn(f'{config}: no preset {args.preset!r}; using the config as is')
    if args.data_root:
        set_data_root(cfg, args.data_root)
    if args.cfg_options:
        from transvae.utils.config_validation import check_cfg_options
        check_cfg_options(cfg, args.cfg_options)  # a misspelt key would be added and silently ignored
        cfg.merge_from_dict(args.cfg_options)
    # an FSDP training config (its checkpoints are full state dicts) is evaluated by the default runner, unsharded
    fsdp_config_for_eval(cfg)
    cfg.launcher = args.launcher
    return cfg


def _set_max_images(ds: dict, n: int) -> None:
    if ds.get('type') in ('ImageFolderDataset', 'SamplePhotosDataset', 'transvae.ImageFolderDataset',
                          'transvae.SamplePhotosDataset'):
        ds['max_images'] = n
    else:  # any mmengine BaseDataset: the first n samples
        ds['indices'] = n


def build_config(args: argparse.Namespace) -> Config:
    """Single-model mode: the config after preset, ``--data-root`` and ``--cfg-options``; ``load_from`` set."""
    cfg = _load_config(args.config, args)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = _none_ckpt(args.checkpoint)
    cfg.resume = False
    if args.show_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(type='SaveReconstructionsHook', out_dir=args.show_dir)]
    if getattr(args, 'max_images', None):
        _set_max_images(cfg.test_dataloader.dataset, args.max_images)
    if getattr(args, 'batch_size', None):
        cfg.test_dataloader.batch_size = args.batch_size
    if getattr(args, 'num_workers', None) is not None:
        cfg.test_dataloader.num_workers = args.num_workers
        if args.num_workers == 0:
            cfg.test_dataloader.persistent_workers = False
    return cfg


def parse_model_spec(spec: str) -> tuple[str, Optional[str]]:
    """``CFG[:CKPT]`` -> ``(cfg, ckpt or None)``; the config path ends in ``.py``."""
    m = re.match(r'^(.+?\.py)(?::(.*))?$', spec)
    if not m:
        raise SystemExit(f'error: --models entry {spec!r} is not CFG.py[:CKPT]')
    return m.group(1), _none_ckpt(m.group(2))


def model_labels(configs: list[str], labels: Optional[list[str]]) -> list[str]:
    if labels:
        if len(labels) != len(configs):
            raise SystemExit(f'error: {len(labels)} --labels for {len(configs)} models')
        if len(set(labels)) != len(labels):
            raise SystemExit('error: --labels must be unique')
        return list(labels)
    out: list[str] = []
    for c in configs:
        base = osp.splitext(osp.basename(c))[0]
        label, i = base, 2
        while label in out:
            label, i = f'{base}#{i}', i + 1
        out.append(label)
    return out


def layout_of(name: str) -> str:
    for layout in LAYOUTS:
        if name.lower().startswith(layout):
            return layout
    return 'auto'


def parse_datasets(specs: list[str]) -> list[tuple[str, str, str]]:
    """``NAME=PATH`` -> ``[(name, layout, path)]``."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition('=')
        if not sep or not name or not path:
            raise SystemExit(f'error: --datasets entry {spec!r} is not NAME=PATH')
        out.append((name, layout_of(name), path))
    if len({n for n, _, _ in out}) != len(out):
        raise SystemExit('error: --datasets names must be unique')
    return out


def eval_pipeline(resolution: int) -> list[dict]:
    return [
        dict(type='LoadImageRGB'),
        dict(type='ResizeShortSide', size=int(resolution), interpolation='bicubic'),
        dict(type='CenterCrop', size=int(resolution)),
        dict(type='PackVAEInputs'),
    ]


def _subset_file_list(root: str, layout: str, n: int, out_dir: str) -> tuple[str, int]:
    """Write a file list of ``n`` images evenly spaced over the sorted files under ``root``; ``(path, total)``."""
    from transvae.datasets.image_folder import IMG_EXTENSIONS, scan_images
    if not osp.isdir(root):
        raise FileNotFoundError(f'dataset folder not found: {root!r}')
    files = scan_images(root, IMG_EXTENSIONS, recursive=True)
    if layout == 'imagenet':
        files = [f for f in files if '/' in f]  # images inside the class folders only
    total = len(files)
    if n < total:
        step = total / n
        files = [files[int(i * step)] for i in range(n)]
    from mmengine.dist import get_rank
    os.makedirs(out_dir, exist_ok=True)
    path = osp.abspath(osp.join(out_dir, f'filelist_{layout}_{n}_rank{get_rank()}.txt'))
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(files) + '\n')
    return path, total


def dataset_cfg(name: str, layout: str, path: str, resolution: int, max_images: Optional[int],
                work_dir: str) -> dict:
    pipeline = eval_pipeline(resolution)
    if layout == 'photos':
        ds = dict(type='SamplePhotosDataset', data_root=path, split='val', test_mode=True, pipeline=pipeline)
        if max_images:
            ds['max_images'] = max_images
        return ds
    ds = dict(type='ImageFolderDataset', data_root=path, data_prefix='', test_mode=True, pipeline=pipeline,
              layout={'imagenet': 'imagenet', 'coco': 'flat'}.get(layout, 'auto'))
    if max_images:
        ds['ann_file'], _ = _subset_file_list(path, layout, max_images, osp.join(work_dir, 'filelists'))
        ds.pop('layout')
    return ds


def set_pipeline_resolution(pipeline: list, resolution: int) -> None:
    for t in pipeline:
        if isinstance(t, dict) and t.get('type') in ('ResizeShortSide', 'CenterCrop', 'Resize', 'RandomCrop'):
            t['size'] = resolution


def pipeline_crop(pipeline: Any) -> tuple[Optional[int], str]:
    """(crop size, description) of a test pipeline (ResizeShortSide + CenterCrop)."""
    size, interp, parts = None, 'bicubic', []
    for t in pipeline or []:
        if not isinstance(t, dict):
            continue
        typ = t.get('type')
        if typ == 'ResizeShortSide':
            interp = t.get('interpolation', 'bicubic')
            parts.append(f"resize the short side to {t.get('size')} px ({interp}, antialiased)")
        elif typ == 'CenterCrop':
            size = t.get('size')
            parts.append(f'centre crop {size}x{size}' if isinstance(size, int) else f'centre crop {size}')
        elif typ not in ('LoadImageRGB', 'PackVAEInputs', None):
            parts.append(str(typ))
    return (size if isinstance(size, int) else None), (', then '.join(parts) or 'as loaded (no resize / crop)')


def evaluator_cfg(lpips_net: str) -> list[dict]:
    return [dict(type='PSNRMetric'), dict(type='SSIMMetric'), dict(type='LPIPSMetric', net=lpips_net),
            dict(type='FIDMetric')]


def strip_training_modules(cfg: Config) -> list[str]:
    removed = []
    model = cfg.get('model', None)
    if isinstance(model, dict) and model.get('type') in ('VAEGAN', 'transvae.VAEGAN'):
        for k in TRAIN_ONLY_MODEL_KEYS:
            if model.get(k) is not None:
                model[k] = None
                removed.append(k)
    return removed


# ---------------------------------------------------------------------------------------------------------------------
# runtime helpers
# ---------------------------------------------------------------------------------------------------------------------
class EvalCountHook(Hook):
    """Counts the predictions of a test run (N evaluated) and the skipped unreadable files (all ranks summed)."""

    priority = 'LOW'

    def __init__(self) -> None:
        self.num_images = 0
        self.skipped: list[str] = []

    def before_test_epoch(self, runner) -> None:
        self.num_images, self.skipped = 0, []

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        from transvae.engine.hooks.skipped_images_hook import extract_skipped
        self.num_images += sum(1 for o in (outputs or []) if isinstance(o, dict) and 'pred_img' in o)
        self.skipped.extend(extract_skipped(data_batch))

    def totals(self) -> tuple[int, list[str]]:
        from mmengine.dist import all_gather_object, get_world_size
        if get_world_size() == 1:
            return self.num_images, sorted(set(self.skipped))
        gathered = all_gather_object((self.num_images, self.skipped))
        return sum(g[0] for g in gathered), sorted({p for g in gathered for p in g[1]})


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


def build_runner(cfg: Config):
    if 'runner_type' in cfg:
        from transvae.registry import RUNNERS
        return RUNNERS.build(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)


def _jsonable(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v if isinstance(v, (str, int, bool, type(None), list, dict)) else str(v)


def _command(argv) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return 'tools/test.py ' + ' '.join(shlex.quote(str(a)) for a in args)


# ---------------------------------------------------------------------------------------------------------------------
# single model (the historical path)
# ---------------------------------------------------------------------------------------------------------------------
def run_single(args: argparse.Namespace, argv=None) -> dict:
    cfg = build_config(args)
    strip_training_modules(cfg)  # VF foundation model / discriminator are not needed to evaluate reconstructions
    init_cpu_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    counter = EvalCountHook()
    runner.register_hook(counter)
    tiling = apply_tiling(runner.model, args.tile, args.tile_mode)
    metrics = runner.test()
    metrics = {k: _jsonable(v) for k, v in (metrics or {}).items()}
    n, skipped = counter.totals()
    try:  # DDP's DefaultSampler pads with duplicates up to a multiple of the world size
        n = min(n, len(runner.test_dataloader.dataset) - len(skipped))
    except TypeError:
        pass
    if is_main_process():
        print('metrics: ' + json.dumps(metrics, sort_keys=True), flush=True)
        legacy = dict(config=args.config, checkpoint=args.checkpoint, metrics=metrics)
        if args.report or args.out:
            from transvae.evaluation import report as rp
            ds = cfg.test_dataloader.dataset
            size, crop = pipeline_crop(ds.get('pipeline'))
            lpips_net = next((e.get('net', 'alex') for e in _as_list(cfg.get('test_evaluator'))
                              if isinstance(e, dict) and 'LPIPS' in str(e.get('type'))), 'alex')
            label = model_labels([args.config], None)[0]
            setting = rp.make_setting(str(ds.get('type', 'dataset')), size, {label: metrics}, num_images=n,
                                      num_skipped=len(skipped), skipped_files=skipped,
                                      data_root=str(ds.get('data_root', '')), max_images=args.max_images)
            extra = {'reconstruction grids (input | reconstruction)': args.show_dir} if args.show_dir else {}
            report = rp.build_report(
                [dict(label=label, config=args.config, checkpoint=args.checkpoint)], [setting],
                rp.default_protocol(lpips_net, tiling, crop), command=_command(argv), title='Evaluation report',
                extra=extra)
            rp.write_report(report, args.report, args.out, json_extra=legacy)
            if args.report:
                print(f'report: {args.report}', flush=True)
    return metrics


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


# ---------------------------------------------------------------------------------------------------------------------
# several models x datasets x resolutions
# ---------------------------------------------------------------------------------------------------------------------
def run_multi(args: argparse.Namespace, argv=None) -> dict:
    import torch

    from transvae.evaluation import report as rp

    specs = [parse_model_spec(s) for s in (args.models or [])]
    if args.config:  # positional CONFIG [CHECKPOINT] is the first model
        specs.insert(0, (args.config, _none_ckpt(args.checkpoint)))
    if not specs:
        raise SystemExit('error: no model: give --models CFG[:CKPT] ...')
    labels = model_labels([c for c, _ in specs], args.labels)
    root_wd = args.work_dir or osp.join('./work_dirs', 'benchmark')

    cfgs = [_load_config(c, args, strict_preset=False) for c, _ in specs]
    datasets = parse_datasets(args.datasets) if args.datasets else None
    if datasets is None and args.preset == 'cpu':
        datasets = [('photos', 'photos', PHOTOS_ROOT)]
    resolutions: list[Optional[int]] = list(args.resolutions or [])
    if not resolutions:
        resolutions = [128 if args.preset == 'cpu' else 256] if datasets is not None else [None]

    # settings: (name, layout, path, resolution, dataset cfg or None)
    settings = []
    for r in resolutions:
        if datasets is None:  # the first model's own test set, for every model
            base_ds = copy.deepcopy(cfgs[0].test_dataloader.dataset)
            base_ds = base_ds.to_dict() if isinstance(base_ds, ConfigDict) else dict(base_ds)
            if r is not None:
                set_pipeline_resolution(base_ds.get('pipeline', []), r)
            if args.max_images:
                _set_max_images(base_ds, args.max_images)
            name = f"config:{osp.basename(str(base_ds.get('data_root', '')).rstrip('/')) or base_ds.get('type')}"
            settings.append((name, str(base_ds.get('type')), str(base_ds.get('data_root', '')), r, base_ds))
        else:
            for name, layout, path in datasets:
                settings.append((name, layout, path, r, None))
    # dataset-major order in the report: all resolutions of a dataset together
    order = {s[0]: i for i, s in enumerate(settings)}
    settings.sort(key=lambda s: (order[s[0]], s[3] or 0))

    results: dict[tuple, dict] = {}
    counts: dict[tuple, tuple[int, list[str]]] = {}
    tiling_lines: set[str] = set()
    removed_any: dict[str, list[str]] = {}
    for label, (config, ckpt), base_cfg in zip(labels, specs, cfgs):
        for name, layout, path, r, ds_override in settings:
            cfg = copy.deepcopy(base_cfg)
            removed = strip_training_modules(cfg)
            if removed:
                removed_any[label] = removed
            tag = f"{name.replace(':', '_').replace('/', '_')}_{r or 'cfg'}"
            cfg.work_dir = osp.join(root_wd, label, tag)
            cfg.experiment_name = f'{label}_{tag}'
            if isinstance(cfg.get('visualizer', None), dict):  # a fixed name would reuse (and mix) one instance
                cfg.visualizer['name'] = f'visualizer_{label}_{tag}_{uuid.uuid4().hex[:8]}'
            if ds_override is not None:
                ds = copy.deepcopy(ds_override)
            else:
                ds = dataset_cfg(name, layout, path, r, args.max_images, root_wd)
            old = cfg.get('test_dataloader', None) or {}
            cfg.test_dataloader = dict(
                batch_size=args.batch_size or old.get('batch_size', 8),
                num_workers=old.get('num_workers', 2) if args.num_workers is None else args.num_workers,
                persistent_workers=False,
                drop_last=False,
                sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),  # no padded duplicates
                collate_fn=dict(type='transvae.skip_none_collate'),
                dataset=ds)
            cfg.test_evaluator = evaluator_cfg(args.lpips_net)
            cfg.test_cfg = dict(type='TestLoop')
            cfg.load_from = ckpt
            cfg.resume = False
            if args.show_dir:
                cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
                    dict(type='SaveReconstructionsHook', out_dir=osp.join(args.show_dir, label, tag))]
            init_cpu_distributed(cfg, args.launcher)
            runner = build_runner(cfg)
            counter = EvalCountHook()
            runner.register_hook(counter)
            tiling_lines.add(apply_tiling(runner.model, args.tile, args.tile_mode))
            metrics = {k: _jsonable(v) for k, v in (runner.test() or {}).items()}
            counts[(name, r)] = counter.totals()
            results[(label, name, r)] = metrics
            if is_main_process():
                print(f'metrics[{label}|{name}|{r or "cfg"}]: ' + json.dumps(metrics, sort_keys=True), flush=True)
            del runner
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    report_settings = []
    for name, layout, path, r, _ in settings:
        n, skipped = counts[(name, r)]
        report_settings.append(rp.make_setting(
            name, r, {label: results[(label, name, r)] for label in labels}, num_images=n,
            num_skipped=len(skipped), skipped_files=skipped, layout=layout, data_root=path,
            max_images=args.max_images))
    crop = None
    if datasets is None and resolutions == [None]:
        crop = pipeline_crop(settings[0][4].get('pipeline'))[1]
    protocol = rp.default_protocol(args.lpips_net, '; '.join(sorted(tiling_lines)), crop)
    if args.max_images:
        protocol['subset'] = (f'--max-images {args.max_images}: imagenet/coco layouts take N files evenly spaced '
                              'over the sorted file list, the bundled photos the first N')
    if removed_any:
        protocol['model'] = ('training-only VAEGAN submodules not built for evaluation (their checkpoint keys are '
                             'ignored): ' + '; '.join(f'{k}: {", ".join(v)}' for k, v in removed_any.items()))
    if args.preset:
        protocol['preset'] = args.preset
    report = rp.build_report(
        [dict(label=lb, config=c, checkpoint=k) for lb, (c, k) in zip(labels, specs)], report_settings, protocol,
        command=_command(argv), extra={'reconstructions': args.show_dir} if args.show_dir else None)
    if is_main_process():
        rp.write_report(report, args.report, args.out)
        if args.report:
            print(f'report: {args.report}', flush=True)
        if args.out:
            print(f'json report: {args.out}', flush=True)
    return report


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    if not torch.cuda.is_available():
        tune_cpu_allocator()  # large activations reuse heap memory (TRANSVAE_MALLOC_MMAP_THRESHOLD_MB=0: off)
    from transvae.engine.checkpoint_io import trusted_checkpoints
    from transvae.utils.config_validation import config_errors
    with trusted_checkpoints(args.trust_checkpoint), config_errors(exit_on_error=True):
        result = run_multi(args, argv) if args.multi else run_single(args, argv)
    shutdown_distributed()
    return result


if __name__ == '__main__':
    main()
