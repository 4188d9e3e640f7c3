"""A self-describing model package: a folder that builds the model with no config tree, no pickle, no config code.

:func:`save_pretrained` writes three files into ``out_dir`` (each atomically, :mod:`transvae.engine.atomic_io`):

* ``config.json``: ``{'format': 'transvae-pretrained', 'format_version': 1, 'model': <the resolved model config>,
  ...}``: the ``model`` dict of the config as plain JSON (every ``type`` by its registered name, tuples as lists),
  plus ``transvae_version``, ``torch_version``, parameter counts, the source config file, the checkpoint's
  iteration / epoch, which weights were written (``weights``: ``'ema'`` or ``'model'``) and the latent statistics
  (``latent_mean`` / ``latent_std`` per channel) when the model has them set (:meth:`VAE.set_latent_stats`), with
  where they came from (``latent_stats``: the latent folder, its convention and count) when exported with one;
* ``model.safetensors``: the model's state dict (exact dtypes, contiguous, unshared);
* ``README.md``: a model card (architecture, parameters, training config summary, the ``tools/test.py`` report).

:func:`from_pretrained` reads ``config.json`` with :mod:`json` only, builds ``model`` through the registry and loads
``model.safetensors`` after checking it (file structure, keys, shapes and exact dtypes), in eval mode.
:func:`export_pretrained` is the converter behind ``tools/model_converters/export_pretrained.py``: config +
checkpoint -> package, preferring the EMA weights where the checkpoint has them; with ``latent_dir`` (the folder
``tools/extract_latents.py`` wrote with this checkpoint; its recorded VAE is checked) the package's ``latent_mean`` /
``latent_std`` are that folder's statistics, bit for bit, so the package and the latents a DiT trains on carry the
same values.

EMA in a checkpoint (mmengine's ``EMAHook`` / :class:`~transvae.engine.hooks.TransVAEEMAHook`): before saving, the
hook swaps the averaged weights into ``state_dict`` and stores the live (trained) weights under
``ema_state_dict['module.<key>']``. So a checkpoint with ``ema_state_dict`` holds the EMA in ``state_dict``;
``ema=False`` takes the live weights back from ``ema_state_dict``.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import sys
from typing import Any, Optional

import torch
from torch import nn

from transvae.engine.atomic_io import atomic_write, atomic_write_text
from transvae.engine.checkpoint_compat import CheckpointFileError, check_checkpoint_fits, state_dict_of, strip_prefix
from transvae.engine.checkpoint_io import load_checkpoint_file
from transvae.utils.errors import InputNotFoundError, UserInputError
from transvae.utils.files import read_json_object
from transvae.utils.output_paths import check_outputs

__all__ = ['PretrainedFormatError', 'save_pretrained', 'from_pretrained', 'export_pretrained', 'select_weights',
           'CONFIG_NAME', 'WEIGHTS_NAME', 'CARD_NAME', 'FORMAT']

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
CARD_NAME = 'README.md'
FORMAT = 'transvae-pretrained'
FORMAT_VERSION = 1
#: top-level training-config keys summarised in the model card
_TRAIN_KEYS = ('train_cfg', 'optim_wrapper', 'param_scheduler', 'train_dataloader', 'custom_hooks', 'randomness')


class PretrainedFormatError(UserInputError, ValueError):
    """A package folder that is not a readable transvae package, or an output that cannot be written."""


# ---------------------------------------------------------------------------------------------------------------------
# config -> plain JSON
# ---------------------------------------------------------------------------------------------------------------------
def _registered_name(cls: type) -> str:
    from transvae.registry import MODELS
    registry = MODELS
    while registry is not None:
        for name, obj in registry.module_dict.items():
            if obj is cls:
                return name if registry is MODELS else f'{registry.scope}.{name}'
        registry = registry.parent
    raise PretrainedFormatError(f'{cls.__module__}.{cls.__qualname__} is not registered in the model registry: a '
                                'package names every type by its registered name')


def to_plain(obj: Any, where: str = 'model') -> Any:
    """``obj`` (a config value) as JSON data: dicts with string keys, lists, numbers, strings, ``None``; a class
    as its registered name. Anything else is a :class:`PretrainedFormatError` naming the key."""
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise PretrainedFormatError(f'{where}: key {k!r} is not a string; JSON cannot hold it')
            out[k] = _registered_name(v) if k == 'type' and isinstance(v, type) else to_plain(v, f'{where}.{k}')
        return out
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, f'{where}[{i}]') for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if obj != obj or obj in (float('inf'), float('-inf')):
            raise PretrainedFormatError(f'{where}: {obj} cannot be stored in JSON')
        return obj
    raise PretrainedFormatError(f'{where}: a {type(obj).__name__} ({obj!r:.80}) cannot be stored in config.json')


def _model_cfg_of(model: nn.Module, config: Any) -> dict:
    cfg = config if config is not None else getattr(model, 'cfg', None)
    if cfg is None:
        raise PretrainedFormatError('save_pretrained needs the config the model was built from (config=..., or a '
                                    'model from init_model, which keeps it as model.cfg)')
    if hasattr(cfg, 'to_dict'):
        cfg = cfg.to_dict()
    model_cfg = cfg.get('model', cfg) if isinstance(cfg, dict) else None
    if not isinstance(model_cfg, dict) or 'type' not in model_cfg:
        raise PretrainedFormatError('config has no model dict with a type')
    model_cfg = to_plain(model_cfg)
    model_cfg.pop('init_cfg', None)  # the weights follow: no pretrained initialisation on load
    return model_cfg


def _version() -> str:
    # the root package's __version__; it is loaded (this module is inside it), and importing it here would be an
    # import of our own package (tests/test_import_layers.py)
    return str(getattr(sys.modules.get('transvae'), '__version__', 'unknown'))


def _latent_stats(model: nn.Module) -> tuple[Optional[list], Optional[list]]:
    mean, std = getattr(model, 'latent_mean', None), getattr(model, 'latent_std', None)
    if not (torch.is_tensor(mean) and torch.is_tensor(std)):
        return None, None
    if bool((mean == 0).all()) and bool((std == 1).all()):
        return None, None  # never set (identity)
    return mean.detach().cpu().double().tolist(), std.detach().cpu().double().tolist()


# ---------------------------------------------------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------------------------------------------------
def save_pretrained(model: nn.Module, out_dir: str, *, config: Any = None, checkpoint_meta: Optional[dict] = None,
                    report: Optional[str] = None, weights: Optional[str] = None,
                    latent_stats_source: Optional[dict] = None) -> dict:
    """Write ``model`` as a package folder (module docstring); returns the ``config.json`` content.

    Args:
        model: the built model with its weights (unwrapped).
        out_dir: the package folder (created; existing package files are replaced).
        config: the config the model was built from (an mmengine ``Config`` or a dict with ``model``; a model dict
            alone also works); default ``model.cfg`` (:func:`transvae.apis.init_model` sets it).
        checkpoint_meta: the checkpoint's ``meta`` (its iteration, epoch, config file, experiment name).
        report: the Markdown of a ``tools/test.py`` report, copied into the model card.
        weights: which weights ``model`` holds (``'ema'`` / ``'model'``), recorded in ``config.json``.
        latent_stats_source: where the model's latent statistics come from (folder, convention, count), recorded
            in ``config.json`` as ``latent_stats``.
    """
    check_outputs({'out_dir': out_dir}, {}, dirs=['out_dir'])
    model_cfg = _model_cfg_of(model, config)
    cfg_dict = config.to_dict() if hasattr(config, 'to_dict') else (config if isinstance(config, dict) else {})
    if config is None and hasattr(getattr(model, 'cfg', None), 'to_dict'):
        cfg_dict = model.cfg.to_dict()
    source = getattr(config if config is not None else getattr(model, 'cfg', None), 'filename', None)
    meta = dict(checkpoint_meta or {})
    tensors = {}
    for k, v in model.state_dict().items():
        if not torch.is_tensor(v):
            raise PretrainedFormatError(f'state_dict entry {k!r} is a {type(v).__name__}, not a tensor')
        tensors[k] = v.detach().cpu().contiguous().clone()
    params = list(model.parameters())
    mean, std = _latent_stats(model)
    info = {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'model_type': model_cfg['type'], 'class': f'{type(model).__module__}.{type(model).__qualname__}',
        'transvae_version': _version(), 'torch_version': torch.__version__,
        'parameters': {'total': sum(p.numel() for p in params),
                       'trainable': sum(p.numel() for p in params if p.requires_grad),
                       **{name: sum(p.numel() for p in child.parameters())
                          for name, child in model.named_children()}},
        'latent_channels': getattr(model, 'latent_channels', None),
        'downsample_factor': getattr(model, 'downsample_factor', None),
        'source_config': osp.basename(source) if source else meta.get('config_file'),
        'checkpoint': {k: meta[k] for k in ('iter', 'epoch', 'experiment_name', 'config_file') if k in meta},
        'weights': weights or 'model',
        'latent_mean': mean, 'latent_std': std, 'latent_stats': latent_stats_source if mean is not None else None,
        'model': model_cfg,
    }
    info = to_plain(info, 'config.json')
    os.makedirs(out_dir, exist_ok=True)
    from safetensors.torch import save
    blob = save(tensors, metadata={'format': 'pt'})
    atomic_write(osp.join(out_dir, WEIGHTS_NAME), lambda f: f.write(blob))
    atomic_write_text(osp.join(out_dir, CONFIG_NAME), json.dumps(info, indent=2, sort_keys=False) + '\n')
    atomic_write_text(osp.join(out_dir, CARD_NAME), model_card(info, cfg_dict, report))
    return info


def model_card(info: dict, cfg: dict, report: Optional[str] = None) -> str:
    """The ``README.md`` of a package: architecture, parameters, training config summary, the test report."""
    p = info['parameters']
    parts = ', '.join(f'{k} {v:,}' for k, v in p.items() if k not in ('total', 'trainable'))
    stats = 'set (config.json latent_mean / latent_std)' if info.get('latent_mean') else 'not set (identity)'
    lines = [f"# {info.get('source_config') or info['model_type']}", '',
             'A transvae model package: load it with `transvae.apis.from_pretrained(path)` (no config tree, no '
             'pickle).', '', '## Model', '',
             f"- type: `{info['model_type']}` (`{info['class']}`)",
             f"- latent channels: {info.get('latent_channels')}, downsampling factor: {info.get('downsample_factor')}",
             f"- parameters: {p['total']:,} ({parts})",
             f"- weights: {info['weights']}" + (' (exponential moving average)' if info['weights'] == 'ema' else ''),
             f'- latent statistics: {stats}',
             f"- transvae {info['transvae_version']}, torch {info['torch_version']}", '',
             '## Architecture', '', '```json', json.dumps(info['model'], indent=2), '```', '']
    ck = info.get('checkpoint') or {}
    train = {k: cfg[k] for k in _TRAIN_KEYS if k in cfg}
    if ck or train:
        lines += ['## Training', '']
        lines += [f'- {k}: {v}' for k, v in ck.items()]
        for k, v in train.items():
            try:
                text = json.dumps(to_plain(v, k))
            except PretrainedFormatError:
                text = repr(v)
            lines.append(f'- {k}: `{text[:400]}`')
        lines.append('')
    if report:
        lines += ['## Evaluation (tools/test.py report)', '', report.strip(), '']
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------------------------------
def read_config(path: str) -> dict:
    """The checked ``config.json`` of the package folder ``path``."""
    if not osp.isdir(path):
        raise InputNotFoundError(f'model package not found: {path} (a folder with {CONFIG_NAME} and {WEIGHTS_NAME})')
    cfg_path = osp.join(path, CONFIG_NAME)
    if not osp.isfile(cfg_path):
        raise InputNotFoundError(f'{path} is not a model package: it has no {CONFIG_NAME}')
    info = read_json_object(cfg_path, PretrainedFormatError)
    if info.get('format') != FORMAT:
        raise PretrainedFormatError(f'{cfg_path} is not a transvae package config (no "format": "{FORMAT}")')
    if int(info.get('format_version', 0)) > FORMAT_VERSION:
        raise PretrainedFormatError(f'{cfg_path} has format_version {info["format_version"]}; this transvae reads '
                                    f'up to {FORMAT_VERSION}: upgrade transvae')
    if not isinstance(info.get('model'), dict) or not isinstance(info['model'].get('type'), str):
        raise PretrainedFormatError(f'{cfg_path}: "model" must be a dict with a "type"')
    return info


def from_pretrained(path: str, device: str | torch.device = 'cpu') -> nn.Module:
    """The model of the package folder ``path`` (written by :func:`save_pretrained`), on ``device``, in eval mode.

    Raises:
        InputNotFoundError: no such folder, or a file missing from it.
        PretrainedFormatError: ``config.json`` is not a package config, or names a type that is not registered.
        CheckpointMismatchError: ``model.safetensors`` is truncated, malformed, or its keys / shapes / dtypes do
            not fit the model (``CheckpointFileError`` for the first).
    """
    from transvae.apis.setup_env import register_all_modules
    from transvae.registry import MODELS
    path = os.fspath(path)
    info = read_config(path)
    register_all_modules()
    try:
        model = MODELS.build(info['model'])
    except KeyError as e:
        raise PretrainedFormatError(f'{osp.join(path, CONFIG_NAME)}: {e.args[0] if e.args else e}') from None
    weights = osp.join(path, WEIGHTS_NAME)
    if not osp.isfile(weights):
        raise InputNotFoundError(f'{path} is not a complete model package: it has no {WEIGHTS_NAME}')
    ckpt = load_checkpoint_file(weights, map_location='cpu')
    name = info.get('source_config') or osp.join(path, CONFIG_NAME)
    check_checkpoint_fits(model, ckpt, weights, name, allow_partial=False, tool_hint=None)
    sd = strip_prefix(state_dict_of(ckpt))
    model_sd = model.state_dict()
    bad = [f'{k} ({sd[k].dtype}, model {model_sd[k].dtype})' for k in model_sd
           if k in sd and sd[k].dtype != model_sd[k].dtype]
    if bad:
        raise CheckpointFileError(f'{weights}: {len(bad)} tensors have another dtype than the model built from '
                                  f'{CONFIG_NAME}, e.g. {", ".join(bad[:3])}: the package was changed after export')
    model.load_state_dict(sd, strict=True)
    model.pretrained_info = info
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------------------------
# checkpoint -> package
# ---------------------------------------------------------------------------------------------------------------------
def select_weights(ckpt: dict, ema: bool = True) -> tuple[dict, str]:
    """``(state dict, 'ema' | 'model')``: the weights of a loaded checkpoint to export (module docstring)."""
    sd = strip_prefix(state_dict_of(ckpt))
    ema_sd = ckpt.get('ema_state_dict') if isinstance(ckpt, dict) else None
    if not isinstance(ema_sd, dict):
        return sd, 'model'
    if ema:
        return sd, 'ema'  # EMAHook swapped the average into state_dict
    live = dict(sd)
    for k, v in ema_sd.items():
        if k.startswith('module.') and k[7:] in live:
            live[k[7:]] = v
    return live, 'model'


def export_pretrained(config: Any, checkpoint: str, out_dir: str, *, report: Optional[str] = None,
                      trusted: bool = False, ema: bool = True, latent_dir: Optional[str] = None) -> dict:
    """Build ``config``'s model (training-only submodules dropped), load ``checkpoint`` (EMA weights where present
    unless ``ema=False``) and write the package to ``out_dir``; returns its ``config.json`` content.

    Args:
        config: config file or ``Config``.
        checkpoint: ``.pth`` / ``.safetensors`` (read safely; ``trusted`` allows arbitrary unpickling).
        out_dir: package folder; must not be or contain an input.
        report: a ``tools/test.py`` report file (Markdown), copied into the model card.
        latent_dir: a latent folder of this VAE (either layout, :mod:`transvae.utils.latent_folders`): its
            statistics become the package's ``latent_mean`` / ``latent_std``; latents recorded as written by another
            checkpoint or model config are refused (:func:`transvae.apis.latents.check_latents_vae`).
    """
    from transvae.apis.entry import build_model, load_config
    from transvae.engine.checkpoint_compat import config_name_of
    from transvae.evaluation.protocol import strip_training_modules
    check_outputs({'OUT': out_dir}, {'config': config if isinstance(config, str) else None,
                                     'checkpoint': checkpoint, 'report': report, 'latent folder': latent_dir},
                  dirs=['OUT'], exclusive=['OUT'])
    text = None
    if report is not None:
        if not osp.isfile(report):
            raise InputNotFoundError(f'report not found: {report}')
        with open(report, encoding='utf-8') as f:
            text = f.read()
    cfg = load_config(config)
    stats = stats_source = None
    if latent_dir is not None:  # checked before strip_training_modules: the folder records the full model config
        stats, stats_source = _folder_stats(latent_dir, cfg, checkpoint, str(config))
    strip_training_modules(cfg)
    ckpt = load_checkpoint_file(checkpoint, trusted=trusted)  # a missing file: InputNotFoundError
    sd, source = select_weights(ckpt, ema)
    model = build_model(cfg, None)
    one_sided = check_checkpoint_fits(model, {'state_dict': sd}, checkpoint, config_name_of(cfg), allow_partial=True,
                                      tool_hint='`python tools/model_converters/export_pretrained.py {config} {ckpt} '
                                      'OUT`')
    absent = [m[1:] for m in one_sided if m.startswith('-')]
    if absent:  # extra checkpoint modules (a discriminator) are dropped; a model module without weights is not
        raise CheckpointFileError(f'{checkpoint} has no weights for {", ".join(absent)} of the model of '
                                  f'{config_name_of(cfg)}: the package would hold random weights there')
    model.load_state_dict(sd, strict=False)
    if stats is not None:
        if not hasattr(model, 'set_latent_stats'):
            raise PretrainedFormatError(f'{type(model).__name__} has no latent statistics to set (--latent-dir)')
        if stats['mean'].numel() != int(getattr(model, 'latent_channels', -1)):
            raise PretrainedFormatError(f'{latent_dir}: statistics of {stats["mean"].numel()} channels, the model has '
                                        f'{getattr(model, "latent_channels", None)} latent channels')
        model.set_latent_stats(stats['mean'], stats['std'])
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    return save_pretrained(model.eval(), out_dir, config=cfg, checkpoint_meta=meta, report=text, weights=source,
                           latent_stats_source=stats_source)


def _folder_stats(latent_dir: str, cfg: Any, checkpoint: str, config_name: str) -> tuple[dict, dict]:
    """The statistics of the latent folder ``latent_dir`` and a record of them, after checking that its recorded
    VAE is ``cfg``'s model with ``checkpoint`` (a folder that records no VAE is refused: nothing ties it to it)."""
    from transvae.apis.latents import check_latents_vae
    from transvae.utils.latent_folders import layout_of
    layout = layout_of(latent_dir)
    prov = layout.provenance(latent_dir)
    if not check_latents_vae(latent_dir, cfg, checkpoint, config_name=config_name, provenance=prov):
        raise PretrainedFormatError(f'{latent_dir} does not record which VAE wrote it: the package would carry '
                                    'statistics of unknown latents; use a folder of tools/extract_latents.py')
    stats = layout.load_stats(latent_dir)
    info = dict(latent_dir=osp.abspath(latent_dir), layout=layout.name, file=layout.stats_file,
                **layout.stats_info(latent_dir))
    return stats, info
