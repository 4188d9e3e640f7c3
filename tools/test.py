"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--show-dir DIR]``.

Prints the metrics (one JSON line prefixed with ``metrics:``) and optionally writes them to ``--out``.
"""
# Before torch is imported: torch >= 2.6 defaults torch.load to weights_only=True, which breaks mmengine 0.10.7's
# checkpoint loading (ENVIRONMENT.md §2.1). With this flag, loading a checkpoint unpickles arbitrary objects: a
# malicious .pth can execute code. Only evaluate checkpoints you trust.
import os

os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

import argparse  # noqa: E402
import json  # noqa: E402
import os.path as osp  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402

from transvae.engine.utils import apply_preset, init_cpu_distributed, set_data_root  # noqa: E402
from transvae.utils import register_all_modules  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a transvae checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for the test logs')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--show-dir', help='write input | reconstruction PNGs of every test image here')
    parser.add_argument('--preset', help='merge cfg.presets[PRESET] into the config (e.g. cpu)')
    parser.add_argument('--data-root', help='data_root of the datasets')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys (applied last)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    if args.preset:
        try:
            apply_preset(cfg, args.preset)
        except KeyError as e:
            raise SystemExit(f'error: {e.args[0]}') from None
    if args.data_root:
        set_data_root(cfg, args.data_root)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(type='SaveReconstructionsHook', out_dir=args.show_dir)]
    return cfg


def _jsonable(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v if isinstance(v, (str, int, bool, type(None), list, dict)) else str(v)


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    cfg = build_config(args)
    init_cpu_distributed(cfg, args.launcher)
    if 'runner_type' in cfg:
        from transvae.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    metrics = {k: _jsonable(v) for k, v in (metrics or {}).items()}
    if is_main_process():
        print('metrics: ' + json.dumps(metrics, sort_keys=True), flush=True)
        if args.out:
            os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
            with open(args.out, 'w') as f:
                json.dump(dict(config=args.config, checkpoint=args.checkpoint, metrics=metrics), f, indent=2)
    return metrics


if __name__ == '__main__':
    main()
