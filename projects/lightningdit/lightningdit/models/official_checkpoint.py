"""Convert an official hustvl/LightningDiT checkpoint file into this project's checkpoint and model config.

The output checkpoint is what ``tools/test.py`` and the Runner load for a ``LatentFlowModel``: ``{'state_dict':
{'backbone.<key>': ...}, 'meta': {...}}`` with the chosen weights (EMA by default) in ``state_dict``, as a
``TransVAEEMAHook`` run stores them. The model config (a Python config file) builds the matching ``LatentFlowModel``
and reproduces the reference's sampling protocol: its ``sample`` section when the checkpoint carries its training
config, else the paper's (250 grid points = 249 Euler steps, time shift 0.3, no CFG), always with the reference's
3-channel CFG (``guided_channels=3``).
"""
from __future__ import annotations

import json
import os.path as osp
import pprint
from collections.abc import Mapping
from typing import Any

import torch

from transvae.engine.atomic_io import atomic_write, atomic_write_text
from transvae.engine.checkpoint_io import load_checkpoint_file
from transvae.registry import MODELS
from transvae.utils.errors import InputNotFoundError
from transvae.utils.output_paths import OutputPathError, check_outputs

from .official_keys import (OFFICIAL_ARCHS, OfficialCheckpointError, convert_official_state_dict,
                            official_backbone_config, select_weights)

#: the reference's ``sample.sampling_method`` -> our sampler (fixed-grid torchdiffeq methods only)
SAMPLERS = {'euler': 'EulerODESampler', 'heun2': 'HeunODESampler'}


def official_model_config(size: Mapping[str, Any], official_cfg: Mapping[str, Any] | None) -> tuple[dict, list[str]]:
    """The ``LatentFlowModel`` config of converted weights and notes on what could not be reproduced.

    Args:
        size: :func:`official_backbone_config`'s ``dict(latent_size, backbone)``.
        official_cfg: the checkpoint's ``config`` entry (the reference's YAML as a dict) or ``None``.

    Returns:
        ``(model config, notes)``. With ``official_cfg``, its ``sample`` keys are read with the reference's own
        defaults where one is absent (``inference.py``: no time shift, CFG interval from 0); without it, the paper's
        protocol.
    """
    notes: list[str] = []
    if official_cfg is None:
        sample: Mapping[str, Any] = dict(sampling_method='euler', num_sampling_steps=250, timestep_shift=0.3,
                                         cfg_scale=1.0, cfg_interval_start=0.11)
        notes.append('the checkpoint has no training config: the paper\'s protocol (250 grid points = 249 Euler '
                     'steps, time shift 0.3, no CFG)')
    else:
        sample = official_cfg.get('sample') or {}
    method = str(sample.get('sampling_method', 'euler')).lower()
    if method not in SAMPLERS:
        notes.append(f'its sampling_method {method!r} has no fixed-grid sampler here: Euler is written instead')
    if str(sample.get('mode', 'ODE')).upper() != 'ODE':
        notes.append(f"its sample.mode {sample.get('mode')!r} is not reproduced: the ODE sampler is written")
    scale = float(sample.get('cfg_scale', 1.0))
    model = dict(
        type='LatentFlowModel', latent_size=size['latent_size'], backbone=dict(size['backbone']),
        sampler=dict(type=SAMPLERS.get(method, 'EulerODESampler'),
                     num_grid_points=int(sample.get('num_sampling_steps', 250)),
                     shift=float(sample.get('timestep_shift', 0.0))),
        # the reference guides only when cfg_scale > 1 (inference.py: using_cfg = cfg_scale > 1.0)
        guidance=dict(type='ClassifierFreeGuidance', scale=scale if scale > 1.0 else 1.0,
                      interval_start=float(sample.get('cfg_interval_start', 0.0)), guided_channels=3))
    return model, notes


def _config_text(model: dict, official_cfg: Mapping[str, Any] | None, src: str, which: str,
                 base_config: str | None) -> str:
    lines = [f'# LatentFlowModel of the official LightningDiT checkpoint {src} ({which} weights), written by',
             '# projects/lightningdit/tools/convert_official_checkpoint.py.']
    if base_config:
        lines += ['# Everything but the model (data, evaluation, runtime) comes from the base config: evaluate with',
                  '# tools/test.py THIS_CONFIG CONVERTED.pth',
                  f'_base_ = [{osp.abspath(base_config)!r}]',
                  f"model = {pprint.pformat(dict({'_delete_': True}, **model), width=100, sort_dicts=False)}"]
    else:
        lines += ['# The model only: copy `model` into a leaf config (with `_delete_=True` over a Fig. 6 config), or',
                  '# convert again with --base-config FIG6_CONFIG for a config that tools/test.py runs directly.',
                  "custom_imports = dict(imports=['projects.lightningdit.lightningdit'], allow_failed_imports=False)",
                  f'model = {pprint.pformat(model, width=100, sort_dicts=False)}']
    data = (official_cfg or {}).get('data') or {}
    if official_cfg is not None:
        # the reference's default multiplier when its config has none is SD's 0.18215 (train.py / inference.py)
        mult = float(data.get('latent_multiplier', 0.18215))
        lines += [f'# the reference normalised its latents with latent_norm={bool(data.get("latent_norm", False))} '
                  f'and latent_multiplier={mult}',
                  f'train_dataloader = dict(dataset=dict(latent_multiplier={mult!r}))',
                  f'test_evaluator = dict(latent_multiplier={mult!r})']
    return '\n'.join(lines) + '\n'


def convert_official_checkpoint(src: str, out: str, weights: str | None = None, arch: str | None = None,
                                num_classes: int | None = None, num_heads: int | None = None,
                                config_out: str | None = None, overwrite: bool = False,
                                base_config: str | None = None) -> dict[str, Any]:
    """Convert the official checkpoint ``src`` into our checkpoint ``out`` and model config ``config_out``.

    Args:
        src: an official ``train.py`` checkpoint (``'ema'`` / ``'model'`` / ``'opt'`` / ``'config'``) or a bare state
            dict; read with ``weights_only=True`` (nothing pickled runs).
        out: our checkpoint (``.pth``), written atomically.
        weights: ``'ema'`` / ``'model'``; ``None``: EMA where present (:func:`select_weights`).
        arch: our or the official arch name; ``None``: a custom size with ``num_heads`` (depth, width, patch read
            from the weights, e.g. the reference's 1p0B / 1p6B), else the checkpoint config's ``model.model_type``.
        num_classes: real classes; ``None``: the checkpoint config's ``data.num_classes``, else the label table's
            rows minus the null row.
        num_heads: attention heads of a custom size.
        config_out: the model config file; default ``<out without extension>_config.py``.
        overwrite: replace existing outputs (otherwise an existing output is refused).
        base_config: a config the written one inherits everything but ``model`` from (e.g. a Fig. 6 config of the
            same latent shape), so ``tools/test.py`` runs it; ``None``: a model-only config.

    Returns:
        ``dict(weights, model (config), config_text, config_out, out, notes, table_max_abs_diff, parameters)``.
    """
    config_out = config_out or osp.splitext(out)[0] + '_config.py'
    check_outputs({'OUT': out, '--config-out': config_out}, {'official checkpoint': src, 'base config': base_config})
    if base_config is not None and not osp.isfile(base_config):
        raise InputNotFoundError(f'base config not found: {base_config}')
    if not overwrite:
        for p in (out, config_out):
            if osp.exists(p):
                raise OutputPathError(f'{p} exists; pass --overwrite to replace it')
    ckpt = load_checkpoint_file(src, map_location='cpu', trusted=False)
    sd, which = select_weights(ckpt, weights, name=src)
    official_cfg = ckpt.get('config') if isinstance(ckpt.get('config'), Mapping) else None
    model_type = ((official_cfg or {}).get('model') or {}).get('model_type')
    if arch is None and num_heads is None and model_type is not None:
        arch = str(model_type)
    elif arch is not None and model_type is not None and OFFICIAL_ARCHS.get(arch, arch) != OFFICIAL_ARCHS.get(
            model_type, model_type):
        raise OfficialCheckpointError(f'--arch {arch} but {src} was trained as {model_type} (its config)')
    if arch is None and num_heads is None:
        raise OfficialCheckpointError(f'{src} carries no config naming its model: pass --arch (one of '
                                      f'{sorted(OFFICIAL_ARCHS.values())})')
    if num_classes is None and official_cfg is not None:
        num_classes = ((official_cfg.get('data') or {}).get('num_classes'))
    size = official_backbone_config(sd, arch, num_classes, name=src, num_heads=num_heads)
    model_cfg, notes = official_model_config(size, official_cfg)
    backbone = MODELS.build(model_cfg['backbone'])
    state, diffs = convert_official_state_dict(sd, backbone, name=src)
    backbone.load_state_dict(state, strict=True)
    text = _config_text(model_cfg, official_cfg, src, which, base_config)
    meta = dict(converted_from=osp.abspath(src), weights=which, model=json.dumps(model_cfg),
                official_config=json.dumps(official_cfg, default=str) if official_cfg is not None else None,
                table_max_abs_diff=diffs)
    atomic_write(out, lambda f: torch.save(dict(state_dict={f'backbone.{k}': v for k, v in state.items()},
                                                meta=meta), f))
    atomic_write_text(config_out, text)
    return dict(weights=which, model=model_cfg, config_text=text, config_out=config_out, out=out, notes=notes,
                table_max_abs_diff=diffs, parameters=sum(p.numel() for p in backbone.parameters()))


__all__ = ['SAMPLERS', 'convert_official_checkpoint', 'official_model_config']
