"""Config surgery: presets, the command-line shortcuts of the tools (``--preset``, ``--data-root``, ``--resolution``,
``--max-iters``, ``--epochs``, ``--amp``) and the config fingerprint.

Everything here works on an :class:`mmengine.Config` and has no side effect beyond it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import InfiniteSampler

from transvae.datasets.transforms.resolution import set_pipeline_resolution
from transvae.registry import DATA_SAMPLERS, DATASETS, OPTIM_WRAPPERS, resolve_type

__all__ = ['preset_tables', 'available_presets', 'apply_preset', 'config_fingerprint', 'dataset_roots', 'set_data_root',
           'set_resolution', 'set_max_iters', 'set_epochs', 'set_amp']

_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


# ---------------------------------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------------------------------
def preset_tables(cfg: Config) -> list[str]:
    """Top-level keys holding preset tables: every ``<kind>_presets`` (sorted), then ``presets`` (merged last).

    Several ``_base_`` files cannot define the same top-level key (mmengine raises "Duplicate key is not allowed
    among bases"), so base files use their own ``<kind>_presets`` key (``schedule_presets``, ``dataset_presets``,
    ``model_presets``) and a leaf config may use ``presets``.
    """
    keys = sorted(k for k in cfg.keys() if isinstance(k, str) and k.endswith('_presets'))
    if 'presets' in cfg:
        keys.append('presets')
    return keys


def available_presets(cfg: Config) -> list[str]:
    names: set[str] = set()
    for key in preset_tables(cfg):
        table = cfg.get(key) or {}
        if isinstance(table, dict):
            names.update(table.keys())
    return sorted(names)


def apply_preset(cfg: Config, name: str) -> Config:
    """Merge preset ``name`` into ``cfg`` with ``Config.merge_from_dict`` semantics.

    ``name`` is looked up in every preset table (:func:`preset_tables`); the entries found are merged in that order
    (so a leaf config's ``presets`` wins over its bases'). Nested dicts merge key by key, lists replace,
    ``_delete_=True`` replaces a whole dict. Raises ``KeyError`` naming the available presets when no table has it.
    """
    found = False
    for key in preset_tables(cfg):
        table = cfg.get(key) or {}
        if not isinstance(table, dict) or name not in table:
            continue
        preset = table[name]
        preset = preset.to_dict() if isinstance(preset, ConfigDict) else dict(preset)
        cfg.merge_from_dict(preset, allow_list_keys=False)
        found = True
    if not found:
        names = available_presets(cfg)
        available = ', '.join(names) if names else '(none: the config defines no `presets` / `*_presets`)'
        raise KeyError(f"Preset '{name}' is not defined in {cfg.filename}. Available presets: {available}.")
    cfg.applied_preset = name
    return cfg


def config_fingerprint(cfg: Config) -> dict[str, str]:
    """One short sha256 per top-level key of the resolved ``cfg`` (canonical JSON: sorted keys, tuples as lists).

    Two configs train the same thing iff their fingerprints are equal; comparing two names the keys that changed.
    Used by the resolved-config regression test and by the study runner to refuse a finished run whose config
    has changed since.
    """
    def digest(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()[:12]
    return {k: digest(v) for k, v in cfg.to_dict().items()}


# ---------------------------------------------------------------------------------------------------------------------
# shortcuts
# ---------------------------------------------------------------------------------------------------------------------
def _leaf_datasets(ds: Any) -> Iterator[dict]:
    """The innermost dataset dicts under a dataset config (through ``dataset=`` / ``datasets=`` wrappers)."""
    if not isinstance(ds, dict):
        return
    if isinstance(ds.get('datasets'), (list, tuple)):
        for sub in ds['datasets']:
            yield from _leaf_datasets(sub)
    elif isinstance(ds.get('dataset'), dict):
        yield from _leaf_datasets(ds['dataset'])
    else:
        yield ds


def _datasets_of(cfg: Config, loader: str) -> list[dict]:
    dl = cfg.get(loader, None)
    if not isinstance(dl, dict) or not isinstance(dl.get('dataset'), dict):
        return []
    return list(_leaf_datasets(dl['dataset']))


def _dataset_class(type_: Any) -> Optional[type]:
    """The registered dataset class a config ``type`` names (``None`` when not registered here)."""
    return resolve_type(type_, DATASETS, missing_ok=True)


def dataset_roots(cfg: Config) -> list[tuple[str, str]]:
    """``(dataloader, data_root)`` of every train / val / test leaf dataset with a non-empty ``data_root`` (the
    inputs an output path must stay out of; ``'.'`` and ``''`` are not listed)."""
    out = []
    for loader in _DATALOADERS:
        for ds in _datasets_of(cfg, loader):
            root = ds.get('data_root', None)
            if isinstance(root, str) and root.strip() not in ('', '.', './') and (loader, root) not in out:
                out.append((loader, root))
    return out


def set_data_root(cfg: Config, data_root: str) -> None:
    """Set ``data_root`` of every train / val / test dataset (and the top-level ``data_root`` variable).

    Before changing anything, every dataset class that can say whether it may use a folder (a static
    ``check_data_root(data_root)``, e.g. ``SamplePhotosDataset``, which builds the bundled photos only into an empty
    or its own folder) is asked; reads only.

    Raises:
        transvae.datasets.DataRootError: a dataset refuses ``data_root`` (the message names the folder and what to do).
    """
    checked: set[type] = set()
    for loader in _DATALOADERS:
        for ds in _datasets_of(cfg, loader):
            cls = _dataset_class(ds.get('type'))
            check = getattr(cls, 'check_data_root', None)
            if cls is not None and cls not in checked and callable(check):
                checked.add(cls)
                check(data_root)
    for loader in _DATALOADERS:
        for ds in _datasets_of(cfg, loader):
            ds['data_root'] = data_root
    if 'data_root' in cfg:
        cfg.data_root = data_root


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')


def set_resolution(cfg: Config, resolution: int) -> int:
    """Set the resolution arguments of every transform in the train and val pipelines that declares them.

    A transform takes part when its registered class declares ``resolution_keys`` (see
    :mod:`transvae.datasets.transforms.resolution`). Returns the number of transforms changed (``ValueError`` when
    none was found, or for a ``resolution`` < 1).
    """
    _check_positive('--resolution', resolution)
    changed = 0
    for loader in ('train_dataloader', 'val_dataloader'):
        for ds in _datasets_of(cfg, loader):
            changed += set_pipeline_resolution(ds.get('pipeline', None), resolution)
    if changed == 0:
        raise ValueError('--resolution: no transform of the train/val pipelines declares `resolution_keys` (the '
                         'constructor arguments that set its output size, e.g. `resolution_keys = (\'size\', )` '
                         'on a crop or resize transform class).')
    return changed


def set_max_iters(cfg: Config, max_iters: int) -> None:
    """Switch ``train_cfg`` to an ``IterBasedTrainLoop`` of ``max_iters`` (val_interval capped at ``max_iters``);
    ``ValueError`` for ``max_iters`` < 1."""
    _check_positive('--max-iters', max_iters)
    old = cfg.get('train_cfg', None) or {}
    val_interval = max_iters
    if old.get('type', None) == 'IterBasedTrainLoop' or 'max_iters' in old:
        val_interval = min(int(old.get('val_interval', max_iters)), max_iters)
    new = dict(type='IterBasedTrainLoop', max_iters=int(max_iters), val_interval=val_interval)
    if 'val_begin' in old:
        new['val_begin'] = old['val_begin']
    cfg.train_cfg = new


def set_epochs(cfg: Config, epochs: int) -> None:
    """Switch ``train_cfg`` to an ``EpochBasedTrainLoop`` of ``epochs`` (validation every epoch); ``ValueError`` for
    ``epochs`` < 1."""
    _check_positive('--epochs', epochs)
    old = cfg.get('train_cfg', None) or {}
    val_interval = 1
    if old.get('type', None) == 'EpochBasedTrainLoop':
        val_interval = min(int(old.get('val_interval', 1)), epochs)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=int(epochs), val_interval=val_interval)
    dl = cfg.get('train_dataloader', None)
    sampler = dl.get('sampler') if isinstance(dl, dict) else None
    cls = resolve_type(sampler, DATA_SAMPLERS, missing_ok=True) if isinstance(sampler, dict) else None
    if cls is not None and issubclass(cls, InfiniteSampler):
        dl.sampler = dict(type='DefaultSampler', shuffle=True)  # an epoch needs a finite sampler


def _wrapper_class(type_: Any) -> type:
    try:
        return resolve_type(type_, OPTIM_WRAPPERS)  # an unregistered name: the registry's KeyError, with hints
    except TypeError:
        raise ValueError(f'--amp: optim wrapper type {type_!r} is not a registered class.') from None


def set_amp(cfg: Config, dtype: Optional[str] = None) -> str:
    """Make every optim wrapper of ``cfg.optim_wrapper`` mixed-precision with autocast ``dtype``.

    A wrapper that already is an AMP wrapper (a subclass of mmengine's ``AmpOptimWrapper``) keeps its type; any other
    must be a class that declares its registered AMP counterpart itself (class attribute ``amp_variant``:
    ``SafeOptimWrapper`` declares ``'SafeAmpOptimWrapper'``), which then replaces it. Anything else raises a
    ``ValueError`` naming the wrapper to put in the config. Default dtype: 'bfloat16' on CPU and on GPUs that support
    it, else 'float16'. CPU supports only bfloat16.
    """
    from mmengine.optim import AmpOptimWrapper

    from transvae.engine.optimizers import SafeAmpOptimWrapper
    if dtype is None:
        dtype = 'bfloat16' if (not torch.cuda.is_available() or torch.cuda.is_bf16_supported()) else 'float16'
    if not torch.cuda.is_available() and dtype != 'bfloat16':
        raise ValueError(f'--amp on CPU supports only bfloat16, got --amp-dtype {dtype}.')
    ow = cfg.get('optim_wrapper', None)
    if not isinstance(ow, dict):
        raise ValueError('--amp: the config has no `optim_wrapper` dict.')
    targets = [ow] if 'type' in ow or 'optimizer' in ow else [v for v in ow.values() if isinstance(v, dict)]
    for w in targets:
        type_ = w.get('type', 'OptimWrapper')
        cls = _wrapper_class(type_)
        if not issubclass(cls, AmpOptimWrapper):
            variant = vars(cls).get('amp_variant')  # declared by this very class, not inherited by a subclass
            if variant is None:
                raise ValueError(
                    f'--amp: optim wrapper {cls.__name__} declares no mixed-precision variant (`amp_variant`). Name '
                    "an AMP wrapper in the config (type='SafeAmpOptimWrapper'), or declare `amp_variant` on "
                    f'{cls.__name__}.')
            w['type'], cls = variant, _wrapper_class(variant)
        if not torch.cuda.is_available() and not issubclass(cls, SafeAmpOptimWrapper):
            raise ValueError(f'--amp on CPU: {cls.__name__} needs an accelerator (mmengine\'s AmpOptimWrapper); use '
                             "type='SafeAmpOptimWrapper' (bfloat16 autocast on CPU) in the config.")
        w['dtype'] = dtype
    return dtype
