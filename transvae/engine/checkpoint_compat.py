"""Refuse a checkpoint whose weights do not fit the model built from the config, naming the config it came from.

Rule (:func:`check_checkpoint_fits`): group the keys of the model and of the checkpoint by their top-level submodule
(``encoder``, ``decoder``, ``discriminator``, ...). Every submodule present on both sides must match exactly (same
keys, same shapes). A submodule on one side only is allowed when ``allow_partial`` (fine-tuning a stage-1 checkpoint
with a new discriminator, or evaluating a GAN checkpoint without its discriminator), but at least one submodule must
be shared. Violations raise :class:`CheckpointMismatchError` with a short message: the counts, up to three examples,
the config the checkpoint was trained with (from its ``meta``, read without executing it) and the command to use.

Dtypes are checked as well as shapes (:func:`dtype_problem`): a checkpoint tensor must be of the model tensor's kind
(floating point, integer, bool, complex). Floating-point precision may differ (an fp16 / bf16 export loads into an
fp32 model; ``load_state_dict`` casts), but not where a finite value would overflow the model's dtype (a float64
weight of 1e300 into float32); integers may change width where every value fits. An int or bool tensor where the model
has a float one (or the reverse), or a non-tensor value where the model has a tensor, is refused.
"""
from __future__ import annotations

import os.path as osp
import re
from typing import Any, Optional

import torch
from torch import nn

from transvae.utils.errors import UserInputError

from .resume_checks import model_config_from_text


#: keys that never count (mmengine's data preprocessor has no weights, but some subclasses keep buffers)
_IGNORED_PREFIXES = ('data_preprocessor.',)


class CheckpointMismatchError(UserInputError, RuntimeError):
    """The checkpoint's weights belong to a different architecture / config than the model."""


class CheckpointFileError(CheckpointMismatchError, ValueError):
    """A checkpoint file is empty, truncated, malformed or not what it claims to be (or could not be fetched).

    Raised by ``checkpoint_format``, ``checkpoint_io`` and ``remote_checkpoint``. A
    :class:`CheckpointMismatchError` (the tools report both as one ``error:`` line) and a ``ValueError``.
    """


def state_dict_of(ckpt: Any) -> dict:
    """The model weights of a loaded checkpoint (``state_dict`` of an mmengine dict, or the dict itself)."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        return ckpt['state_dict']
    if isinstance(ckpt, dict):
        return ckpt
    raise TypeError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')


def strip_prefix(state_dict: dict, prefix: str = 'module.') -> dict:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _top(key: str) -> str:
    return key.split('.', 1)[0]


def trained_config(meta: Any) -> tuple[Optional[str], Optional[str]]:
    """``(config file or experiment name, model summary)`` from a checkpoint's ``meta``; no code is executed."""
    if not isinstance(meta, dict):
        return None, None
    name = meta.get('config_file') or None
    if not name and isinstance(meta.get('experiment_name'), str):
        name = re.sub(r'_\d{8}_\d{6}(_\d+)?$', '', meta['experiment_name']) or None
        name = f'{name}.py (experiment name)' if name else None
    return name, _model_summary(meta.get('cfg'))


def _model_summary(cfg_text: Any) -> Optional[str]:
    """``type=... encoder=... widths=...`` of ``model = dict(...)`` in a config text, parsed (never executed)."""
    model = model_config_from_text(cfg_text)
    if model is None:
        return None
    parts = [f'type={model["type"]}'] if isinstance(model.get('type'), str) else []
    parts += [f'{k}={v["type"]}' for k, v in model.items() if isinstance(v, dict) and isinstance(v.get('type'), str)]
    return ', '.join(parts[:4]) or None


def _fmt_shape(t: Any) -> str:
    return str(tuple(t.shape)) if torch.is_tensor(t) else type(t).__name__


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return 'bool'
    if dtype.is_complex:
        return 'complex'
    if dtype.is_floating_point:
        return 'float'
    return 'int' if dtype in _INT_DTYPES else str(dtype)


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
               *(getattr(torch, n) for n in ('uint16', 'uint32', 'uint64') if hasattr(torch, n)))


def dtype_problem(ck: torch.Tensor, mk: torch.Tensor) -> Optional[str]:
    """Why the checkpoint tensor ``ck`` cannot be loaded into the model tensor ``mk`` (rule in the module docstring),
    or ``None`` when it can. Costs one pass over ``ck`` only where a cast narrows the value range."""
    if ck.dtype == mk.dtype:
        return None
    kc, km = _kind(ck.dtype), _kind(mk.dtype)
    if kc != km:
        return f'checkpoint {ck.dtype} vs model {mk.dtype}'
    if kc == 'float':
        if torch.finfo(mk.dtype).max < torch.finfo(ck.dtype).max and ck.numel():
            finite = torch.isfinite(ck)
            if bool((finite & (ck.abs() > torch.finfo(mk.dtype).max)).any()):
                return f'checkpoint {ck.dtype} values overflow the model\'s {mk.dtype}'
        return None
    if kc == 'int':
        info = torch.iinfo(mk.dtype)
        try:
            lo, hi = (int(ck.min()), int(ck.max())) if ck.numel() else (0, 0)
        except RuntimeError:  # min / max not implemented for some unsigned dtypes: compare in double
            lo, hi = int(ck.double().min()), int(ck.double().max())
        if lo < info.min or hi > info.max:
            return f'checkpoint {ck.dtype} values do not fit the model\'s {mk.dtype}'
        return None
    return f'checkpoint {ck.dtype} vs model {mk.dtype}'


def check_checkpoint_fits(model: nn.Module, checkpoint: dict, ckpt_path: str = 'the checkpoint',
                          config_name: Optional[str] = None, allow_partial: bool = True,
                          tool_hint: Optional[str] = None) -> list[str]:
    """Raise :class:`CheckpointMismatchError` unless ``checkpoint`` fits ``model`` (rule in the module docstring).

    Args:
        model: the built model (unwrapped).
        checkpoint: a loaded checkpoint (mmengine dict or plain state dict).
        ckpt_path: for the message.
        config_name: the config the model was built from (for the message).
        allow_partial: allow submodules present on one side only.
        tool_hint: command template for the fix, ``{config}`` / ``{ckpt}`` filled in.

    Returns:
        The one-sided submodules (``'+name'``: only in the checkpoint, ``'-name'``: only in the model).
    """
    from mmengine.runner.checkpoint import get_state_dict
    sd = strip_prefix(state_dict_of(checkpoint))
    model_sd = get_state_dict(model)  # plain keys also through DDP-wrapped submodules (MMSeparateDDP), as saved
    ck_keys = {k for k in sd if not k.startswith(_IGNORED_PREFIXES)}
    mk_keys = {k for k in model_sd if not k.startswith(_IGNORED_PREFIXES)}
    ck_mods, mk_mods = {_top(k) for k in ck_keys}, {_top(k) for k in mk_keys}
    shared = ck_mods & mk_mods
    missing = sorted(k for k in mk_keys - ck_keys if _top(k) in shared or not allow_partial)
    unexpected = sorted(k for k in ck_keys - mk_keys if _top(k) in shared or not allow_partial)
    both = sorted(k for k in ck_keys & mk_keys if torch.is_tensor(model_sd[k]))
    mismatched = [k for k in both if not torch.is_tensor(sd[k]) or sd[k].shape != model_sd[k].shape]
    bad_dtypes = {k: p for k in both if k not in mismatched
                  for p in [dtype_problem(sd[k], model_sd[k])] if p is not None}
    one_sided = [f'+{m}' for m in sorted(ck_mods - mk_mods)] + [f'-{m}' for m in sorted(mk_mods - ck_mods)]
    if (missing or unexpected or mismatched or bad_dtypes) or (mk_keys and not shared):
        raise CheckpointMismatchError(_message(model, checkpoint, ckpt_path, config_name, missing, unexpected,
                                               mismatched, sd, model_sd, len(mk_keys), tool_hint, bad_dtypes))
    return one_sided


def _message(model, checkpoint, ckpt_path, config_name, missing, unexpected, mismatched, sd, model_sd, n_model,
             tool_hint, bad_dtypes: Optional[dict] = None) -> str:
    bad_dtypes = bad_dtypes or {}
    counts = []
    if missing:
        counts.append(f'{len(missing)} of the model\'s {n_model} tensors missing')
    if unexpected:
        counts.append(f'{len(unexpected)} unexpected')
    if mismatched:
        other = 'shape' if all(torch.is_tensor(sd[k]) for k in mismatched) else 'shape or type'
        counts.append(f'{len(mismatched)} with another {other}')
    if bad_dtypes:
        counts.append(f'{len(bad_dtypes)} with a dtype the model cannot take')
    if not counts:
        counts.append('no submodule in common')
    examples = [f'{k}: checkpoint {_fmt_shape(sd[k])} vs model {_fmt_shape(model_sd[k])}' for k in mismatched[:2]]
    examples += [f'{k}: {p}' for k, p in list(bad_dtypes.items())[:2]]
    examples += [f'missing {k}' for k in missing[:1]] + [f'unexpected {k}' for k in unexpected[:1]]
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    trained, summary = trained_config(meta)
    cfg_txt = f" of config '{config_name}'" if config_name else ''
    msg = (f'{ckpt_path} does not fit the model{cfg_txt} ({type(model).__name__}): {", ".join(counts)}'
           f'{" (e.g. " + "; ".join(examples) + ")" if examples else ""}.')
    if bad_dtypes and not (missing or unexpected or mismatched):
        return msg + (' The names and shapes fit but the values cannot be these weights (a float weight may change '
                      'precision, fp16 / bf16 into fp32, but not become an integer or bool, nor overflow); '
                      're-export the checkpoint from the trained model.')
    if trained or summary:
        msg += f" It was trained with config '{trained or '?'}'" + (f' [{summary}]' if summary else '') + '.'
        if trained and tool_hint and 'experiment name' not in trained:
            msg += ' Use that config: ' + tool_hint.format(config=trained, ckpt=ckpt_path)
        else:
            msg += ' Use the config it was trained with.'
    else:
        msg += ' Its metadata names no config; use the config it was trained with.'
    return msg


def config_name_of(cfg: Any) -> Optional[str]:
    """The file a (mmengine) config was read from, relative to the working directory when inside it."""
    name = getattr(cfg, 'filename', None)
    if not name:
        return None
    try:
        rel = osp.relpath(name)
        return rel if not rel.startswith('..') else name
    except ValueError:
        return name
