"""Pre-flight of ``tools/dist_train.sh`` / ``tools/dist_test.sh`` / ``tools/slurm_*.sh``: one process checks, before
any rank starts, what every rank would otherwise fail on with its own traceback (8 ranks without ImageNet printed 850
lines): the config resolves (``--preset``, ``--data-root``, ``--cfg-options`` and the other flags applied exactly as
the tool applies them) and every folder / file its datasets read exists.

Usage (the launch scripts call it; ``PREFLIGHT=0`` skips it)::

    .venv/bin/python tools/dist_preflight.py train CONFIG [tools/train.py args ...]
    .venv/bin/python tools/dist_preflight.py test CONFIG CHECKPOINT [tools/test.py args ...]

Exit status 0: go; otherwise one line ``error: ...`` naming the config key and the missing path. Only datasets that
read an existing folder are checked (``ImageFolderDataset``, ``LatentShardDataset`` and their subclasses; not the
bundled photo set, which builds its own), and an unexpected failure of the check itself only warns (the ranks then
report it).
"""
from __future__ import annotations

import os.path as osp
import sys
from typing import Any, Iterator

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
#: dataset classes (and their subclasses) that read an existing ``data_root``; others (the bundled photo set, which
#: builds its folder; synthetic test sets) are not checked
READS_DATA_ROOT = ('ImageFolderDataset', 'LatentShardDataset')


def _walk_datasets(ds: Any, where: str) -> Iterator[tuple[str, dict]]:
    """Every dataset dict under ``ds`` (wrappers: ``dataset=`` / ``datasets=[...]``), with its config key."""
    if not isinstance(ds, dict):
        return
    yield where, ds
    if isinstance(ds.get('dataset'), dict):
        yield from _walk_datasets(ds['dataset'], f'{where}.dataset')
    for i, sub in enumerate(ds.get('datasets') or []):
        yield from _walk_datasets(sub, f'{where}.datasets[{i}]')


def _reads_data_root(type_name: Any) -> bool:
    try:
        from transvae.registry import DATASETS, resolve_type
        cls = resolve_type(type_name, DATASETS, missing_ok=True)
    except Exception:  # noqa: BLE001  (an unknown type is the tool's error to report)
        return False
    if cls is None or hasattr(cls, 'check_data_root'):
        return False  # a class that may build its own folder says so with check_data_root
    names = [c.__name__ for c in cls.__mro__]
    return 'SamplePhotosDataset' not in names and any(n in READS_DATA_ROOT for n in names)


def missing_data(cfg: Any, loaders: list[str]) -> list[str]:
    """One message per missing data folder / annotation file of the datasets of ``loaders`` in ``cfg``."""
    problems = []
    for loader in loaders:
        loader_cfg = cfg.get(loader, None)
        if not isinstance(loader_cfg, dict):
            continue
        for key, ds in _walk_datasets(loader_cfg.get('dataset'), f'{loader}.dataset'):
            root = ds.get('data_root')
            if not isinstance(root, str) or not root or not _reads_data_root(ds.get('type')):
                continue
            name = ds.get('type') if isinstance(ds.get('type'), str) else getattr(ds.get('type'), '__name__', '?')
            hint = (f'give the data with --data-root DIR or --cfg-options {key}.data_root=DIR')
            if not osp.isdir(root):
                problems.append(f'{key}.data_root: data folder not found: {root!r} ({name}); {hint}')
                continue
            prefix = ds.get('data_prefix')
            prefix = prefix.get('img_path') if isinstance(prefix, dict) else prefix
            if isinstance(prefix, str) and prefix:
                folder = prefix if osp.isabs(prefix) or prefix.startswith(root) else osp.join(root, prefix)
                if not osp.isdir(folder):
                    problems.append(f'{key}.data_prefix: data folder not found: {folder!r} ({name}, '
                                    f'data_root={root!r}); {hint}')
            ann = ds.get('ann_file')
            if isinstance(ann, str) and ann:
                path = ann if osp.isabs(ann) or osp.exists(ann) else osp.join(root, ann)
                if not osp.isfile(path):
                    problems.append(f'{key}.ann_file: file not found: {path!r} ({name})')
    return problems


def _train_config(argv: list[str]) -> tuple[Any, list[str]]:
    from transvae.apis.train_cli import build_config, parse_args
    cfg = build_config(parse_args(argv))
    loaders = ['train_dataloader']
    if cfg.get('val_cfg', None) and cfg.get('val_dataloader', None) and cfg.get('val_evaluator', None):
        loaders.append('val_dataloader')
    return cfg, loaders


def _test_config(argv: list[str]) -> tuple[Any, list[str]]:
    from transvae.apis import test_cli as tool
    args = tool.parse_args(argv)
    if getattr(args, 'models', None) or not args.config:
        return None, []  # several models x datasets: the tool checks its --datasets itself
    ckpt = args.checkpoint
    if ckpt and ckpt.lower() != 'none' and '://' not in ckpt and not osp.isfile(ckpt):
        raise SystemExit(f'error: checkpoint not found: {ckpt!r}')
    return tool.build_config(args), ['test_dataloader']


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ('train', 'test'):
        raise SystemExit('error: usage: tools/dist_preflight.py {train,test} CONFIG [tool args ...]')
    mode, rest = argv[0], argv[1:]
    if rest and not rest[0].startswith('-') and not osp.isfile(rest[0]):
        raise SystemExit(f'error: config file not found: {rest[0]!r}')
    from transvae.engine.config_validation import config_errors
    from transvae.apis import register_all_modules
    register_all_modules()
    sys.argv[0] = osp.join('tools', f'{mode}.py')  # argparse's messages name the tool whose arguments these are
    try:
        with config_errors(exit_on_error=True):
            cfg, loaders = (_train_config if mode == 'train' else _test_config)(rest)
    except (ValueError, FileNotFoundError, KeyError) as e:  # the tool's own config building: every rank would fail so
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise SystemExit(f'error: {msg}') from None
    try:
        problems = missing_data(cfg, loaders) if cfg is not None else []
    except Exception as e:  # noqa: BLE001  (a fault of the check itself must not stop a good job)
        print(f'warning: dist pre-flight skipped ({type(e).__name__}: {e})', file=sys.stderr)
        return 0
    if problems:
        more = (f' (also: {", ".join(p.split(":", 1)[0] for p in problems[1:])})' if len(problems) > 1 else '')
        raise SystemExit(f'error: {problems[0]}{more}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
