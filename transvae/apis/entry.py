"""The one entry layer: the config a command resolves, the runner it builds, the model with its weights.

``tools/train.py`` (:mod:`~transvae.apis.train_cli`), ``tools/test.py`` (:mod:`~transvae.apis.test_cli`),
``tools/extract_latents.py`` (:mod:`~transvae.apis.extract_latents_cli`) and :func:`~transvae.apis.init_model` all
go through these three functions, so a config is resolved and checked the same way whichever of them reads it:

* :func:`load_config`: the file (a syntax error names the file and line), then ``preset``, then ``data_root``,
  then the command's own shortcut flags, then ``cfg_options`` (a misspelt top-level key is refused, not added),
  then the checks of the result (a top-level key one typo away from a Runner key; a non-numeric or out-of-range
  well-known numeric key). The most explicit change wins.
* :func:`build_runner`: mmengine's ``Runner``, or the config's registered ``runner_type``; a ``strategy`` that the
  chosen runner would ignore is refused.
* :func:`build_model`: the config's ``model`` through the registry, the checkpoint's weights after checking that
  they fit (``weights_only`` load unless trusted), in eval mode.

Every refusal is a :class:`~transvae.utils.errors.UserInputError` that names what to change; a command turns it
into one ``error:`` line (:func:`~transvae.engine.config_validation.config_errors`).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from transvae.apis.setup_env import register_all_modules
from transvae.engine.config_validation import (ConfigKeyError, ConfigValueError, check_config_values,
                                               check_top_level_keys, merge_cfg_options, read_config)
from transvae.engine.config_surgery import apply_preset, set_data_root

#: a command's shortcut flags (``--batch-size``, ``--max-iters``, ...), applied to the config in place after the
#: preset and ``data_root`` and before ``cfg_options``
Shortcuts = Callable[[Config], None]


def load_config(config: str | os.PathLike | Config, preset: Optional[str] = None,
                cfg_options: Optional[dict] = None, data_root: Optional[str] = None,
                shortcuts: Optional[Shortcuts] = None, strict_preset: bool = True) -> Config:
    """The config a command runs: the file with every change of the command line applied, checked.

    Args:
        config: a config file path, or an mmengine ``Config`` (copied, never changed).
        preset: merge ``cfg.presets[preset]`` (e.g. ``'cpu'``) first.
        cfg_options: ``--cfg-options`` (dotted keys), merged last after checking that every top-level key exists
            in the config or is read by the Runner.
        data_root: the ``data_root`` of every dataset of the config (after the preset).
        shortcuts: the command's shortcut flags, applied after ``data_root`` and before ``cfg_options``.
        strict_preset: a preset the config does not define is an error; ``False``: a warning, the config is used
            as it is (several models side by side, some without that preset).

    Returns:
        The resolved config.

    Raises:
        ConfigSyntaxError: the file or one of its ``_base_`` files is not valid Python.
        ConfigKeyError: an undefined preset, a misspelt ``cfg_options`` key or top-level key.
        ConfigValueError: a well-known numeric key holding a non-number or an out-of-range number.
    """
    if isinstance(config, (str, os.PathLike)):
        cfg = read_config(os.fspath(config))
    elif isinstance(config, Config):
        cfg = config.copy() if hasattr(config, 'copy') else config
    else:
        raise TypeError(f'config must be a path or an mmengine Config, got {type(config).__name__}')
    if preset:
        try:
            apply_preset(cfg, preset)
        except KeyError as e:
            if strict_preset:
                raise ConfigKeyError(e.args[0]) from None
            name = os.fspath(config) if isinstance(config, (str, os.PathLike)) else cfg.filename
            warnings.warn(f'{name}: no preset {preset!r}; using the config as is')
    if data_root:
        set_data_root(cfg, data_root)
    if shortcuts is not None:
        shortcuts(cfg)
    merge_cfg_options(cfg, cfg_options)
    check_top_level_keys(cfg)
    check_config_values(cfg)  # max_iters='ten', batch_size=-1: an error naming the key, before the runner
    return cfg


def build_runner(cfg: Config) -> Runner:
    """mmengine's ``Runner`` for ``cfg``, or the registered ``runner_type`` (FSDP configs need ``FlexibleRunner``); the
    runner's config formats its text once (:class:`~transvae.engine.memo_config.MemoConfig`)."""
    from transvae.engine.memo_config import MemoConfig
    register_all_modules()
    cfg = MemoConfig.of(cfg)
    if cfg.get('strategy', None) is not None:
        check_strategy_runner(cfg)
    if 'runner_type' in cfg:
        from transvae.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def check_strategy_runner(cfg: Config) -> None:
    """A ``strategy`` (e.g. FSDP) is read only by mmengine's ``FlexibleRunner``: refuse to ignore it silently."""
    from mmengine.runner import FlexibleRunner

    from transvae.registry import RUNNERS, resolve_type
    runner_type = cfg.get('runner_type', 'Runner')
    if not issubclass(resolve_type(runner_type, RUNNERS), FlexibleRunner):
        raise ConfigValueError(f"the config sets `strategy` ({cfg.strategy.get('type')}), which only mmengine's "
                               f'FlexibleRunner uses, but runner_type={runner_type!r}. Set runner_type = '
                               "'FlexibleRunner' in the config (see configs/_base_/strategies/fsdp.py), or remove "
                               '`strategy`.')
    from transvae.engine.fsdp import check_fsdp_config
    try:
        check_fsdp_config(cfg)
    except ValueError as e:
        raise ConfigValueError(str(e)) from None


def build_model(cfg: Config, checkpoint: Optional[str] = None, device: str | torch.device = 'cpu', *,
                trusted: Optional[bool] = None, allow_partial: bool = False,
                tool_hint: str = '`python tools/test.py {config} {ckpt}`') -> torch.nn.Module:
    """The ``model`` of ``cfg`` with the weights of ``checkpoint``, on ``device``, in eval mode.

    Args:
        cfg: a resolved config (:func:`load_config`).
        checkpoint: an mmengine ``.pth`` with ``state_dict`` / ``meta``, a plain state dict, or a ``.safetensors``
            export; ``None`` (or ``'none'``) keeps the weights the model builds with (random, or those of its
            ``Pretrained`` ``init_cfg``, applied with ``init_weights``). A checkpoint that does not fit the model raises ``CheckpointMismatchError`` naming
            the config it was trained with.
        device: target device.
        trusted: allow a checkpoint that needs arbitrary unpickling (``None``: the innermost
            ``transvae.engine.checkpoint_io.trusted_checkpoints`` block decides).
        allow_partial: submodules present on one side only are allowed (e.g. a discriminator the checkpoint
            lacks); ``False``: every key must match.
        tool_hint: the fix shown in a mismatch error (``{config}``, ``{ckpt}`` filled in).

    Returns:
        The model in eval mode.
    """
    from transvae.engine.checkpoint_compat import config_name_of
    from transvae.engine.checkpoint_io import load_weights
    from transvae.registry import MODELS
    from transvae.evaluation.protocol import none_ckpt
    register_all_modules()
    checkpoint = none_ckpt(checkpoint)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if checkpoint is not None:
        model_cfg.pop('init_cfg', None)  # no pretrained init when weights follow
    model = MODELS.build(model_cfg)
    if checkpoint is None:
        apply_own_weights(model, model_cfg)
    else:
        load_weights(model, str(checkpoint), config_name=config_name_of(cfg), allow_partial=allow_partial,
                     trusted=trusted, tool_hint=tool_hint)
    return model.to(device).eval()


def apply_own_weights(model: torch.nn.Module, model_cfg: Any) -> None:
    """Load the weights a model config names for itself (a ``Pretrained`` ``init_cfg`` of the model, its encoder or
    decoder) into ``model``; nothing when it names none. mmengine applies ``init_cfg`` only when a training run
    starts, so an evaluation without a checkpoint calls this, or it would run with random weights while the report
    says "pretrained"."""
    from transvae.evaluation.protocol import own_weights
    if own_weights(model_cfg) is not None and callable(getattr(model, 'init_weights', None)):
        model.init_weights()


__all__ = ['load_config', 'build_runner', 'check_strategy_runner', 'build_model', 'apply_own_weights']
