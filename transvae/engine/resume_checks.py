"""What ``--resume`` checks before any weight moves: a resumable file, the same model config, work left to do.

Shapes are not enough: a checkpoint of the same architecture with another RoPE ``theta`` or with the DC shortcut off
loads without a single mismatch and then trains a different model than its first iterations did. So a resume
(:class:`~transvae.engine.rng_state.RNGExactResumeMixin`, on ``TransVAERunner`` and ``TransVAEFlexibleRunner``)
calls :func:`check_resume` on the loaded checkpoint, before the weights, optimizer or schedulers are restored:

* a file without training state (a ``.safetensors`` export or a bare state dict: no ``meta.iter``, no
  ``message_hub``) raises :class:`NotResumableError`: it cannot be resumed, only loaded (``load_from`` /
  ``init_model``);
* the ``model`` of the config the checkpoint was trained with (its ``meta.cfg`` text, parsed without executing it)
  is compared key by key with the current one; a difference raises :class:`ResumeConfigChangedError` naming the
  keys, unless the config sets ``resume_allow_config_change = True`` (``tools/train.py
  --resume-allow-config-change``), which logs the keys as a warning instead. A checkpoint that records no config
  text is resumed with a warning that it could not be compared;
* a checkpoint at the end of the schedule (``meta.iter >= max_iters`` of an ``IterBasedTrainLoop``,
  ``meta.epoch >= max_epochs`` of an ``EpochBasedTrainLoop``) has nothing left to train: exactly at the end raises
  :class:`RunFinished` (not an error: ``tools/train.py`` prints its message and exits 0, so re-running a finished
  command is harmless); beyond the end (a smaller ``--max-iters`` than already trained) raises
  :class:`ResumeBeyondScheduleError` (exit 1): the run would skip data and train nothing.
"""
from __future__ import annotations

import ast
from typing import Any, Optional

from transvae.utils.errors import UserInputError


__all__ = ['ResumeError', 'NotResumableError', 'ResumeConfigChangedError', 'ResumeBeyondScheduleError',
           'RunFinished', 'model_config_from_text', 'config_leaf_diff', 'model_config_diff', 'check_resume']

#: how many differing keys a message lists
_MAX_LISTED = 8


class ResumeError(UserInputError, RuntimeError):
    """A checkpoint that must not be resumed as asked; the message says why and what to do."""


class NotResumableError(ResumeError):
    """A weights-only file (``.safetensors`` export, bare state dict): no iteration, optimizer or scheduler state."""


class ResumeConfigChangedError(ResumeError):
    """The model config differs from the one the checkpoint was trained with."""


class ResumeBeyondScheduleError(ResumeError):
    """The checkpoint is past the end of the current schedule (``max_iters`` / ``max_epochs``)."""


class RunFinished(Exception):
    """The checkpoint is exactly at the end of the schedule: nothing to train (not an error)."""


class _Opaque(str):
    """A config value that is not a literal, kept as its source text (compared as text)."""


def _literal(node: ast.AST) -> Any:
    """The value of a config-text expression: literals and ``dict(...)`` calls; anything else as source text."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Set):
        return sorted((_literal(e) for e in node.elts), key=repr)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args
            and all(kw.arg is not None for kw in node.keywords)):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    return _Opaque(ast.unparse(node))


def model_config_from_text(cfg_text: Any) -> Optional[dict]:
    """The ``model = dict(...)`` of a config text (mmengine's ``pretty_text``), parsed, never executed.

    Returns ``None`` when the text is missing, does not parse or has no ``model`` assignment.
    """
    if not isinstance(cfg_text, str):
        return None
    try:
        tree = ast.parse(cfg_text)
    except SyntaxError:
        return None
    model = None
    for node in tree.body:  # the last assignment wins, as when the text is executed
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == 'model' for t in node.targets):
            model = _literal(node.value)
    return model if isinstance(model, dict) else None


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f'{prefix}.{k}' if prefix else str(k), out)
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f'{prefix}[{i}]', out)
        out[f'{prefix}.__len__'] = len(value)
    else:
        out[prefix] = value
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)  # 1 and 1.0 are one value (mmengine prints what was written)
    return a == b


class _Absent:
    """The value of a key that one side of :func:`config_leaf_diff` does not have (prints as ``(absent)``)."""

    def __repr__(self) -> str:
        return '(absent)'


ABSENT = _Absent()


def config_leaf_diff(old: dict, new: dict, prefix: str = '') -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old leaf, new leaf)}`` for every leaf of two nested config dicts that differs.

    Keys are dotted paths under ``prefix`` (lists holding dicts are indexed: ``a.b[0].c``); a key missing on one
    side has :data:`ABSENT` there, so an absent key and a ``None`` leaf differ; ``1`` and ``1.0`` are one value.
    """
    a, b = _flatten(old, prefix, {}), _flatten(new, prefix, {})
    return {key: (a.get(key, ABSENT), b.get(key, ABSENT)) for key in sorted(set(a) | set(b))
            if not (key in a and key in b and _same(a[key], b[key]))}


def model_config_diff(old: dict, new: dict) -> list[str]:
    """``'model.<key>: <old> -> <new>'`` for every leaf that differs (``(absent)`` on the missing side), sorted."""
    return [f'{key}: {o!r} -> {n!r}' for key, (o, n) in config_leaf_diff(old, new, 'model').items()]


def _current_model_config(cfg: Any) -> Optional[dict]:
    """The runner config's model, through the same text round trip as the checkpoint's (``pretty_text``)."""
    try:
        return model_config_from_text(cfg.pretty_text)
    except Exception:  # noqa: BLE001 - a config mmengine cannot print; compared as a dict instead
        model = cfg.get('model', None)
        return model.to_dict() if hasattr(model, 'to_dict') else model


def _schedule_position(train_loop: Any, meta: dict) -> Optional[tuple[str, int, int]]:
    """``(unit, done, total)`` of the checkpoint in the current loop (``None`` for another loop type)."""
    from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
    if isinstance(train_loop, IterBasedTrainLoop) and isinstance(meta.get('iter'), int):
        return 'iteration', int(meta['iter']), int(train_loop.max_iters)
    if isinstance(train_loop, EpochBasedTrainLoop) and isinstance(meta.get('epoch'), int):
        return 'epoch', int(meta['epoch']), int(train_loop.max_epochs)
    return None


def check_resume(checkpoint: Any, filename: str, cfg: Any, train_loop: Any = None, logger: Any = None) -> None:
    """Refuse to resume ``checkpoint`` when it is weights-only, trained another model config, or has nothing left.

    Args:
        checkpoint: the loaded checkpoint (before its weights are restored).
        filename: its path (for the messages).
        cfg: the runner's config (``model``; ``resume_allow_config_change``).
        train_loop: the built train loop (``None`` or a config dict: the schedule is not checked).
        logger: where warnings go (``None``: :mod:`warnings`).

    Raises:
        NotResumableError, ResumeConfigChangedError, ResumeBeyondScheduleError: see the module docstring.
        RunFinished: the checkpoint is exactly at the end of the schedule.
    """
    def warn(msg: str) -> None:
        if logger is not None:
            logger.warning(msg)
        else:
            import warnings
            warnings.warn(msg)

    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    weights_only = (str(filename).endswith('.safetensors') or not isinstance(meta, dict)
                    or 'message_hub' not in checkpoint or not isinstance(meta.get('iter'), int))
    if weights_only:
        raise NotResumableError(
            f'{filename} holds weights only (a .safetensors export or a bare state dict: no iteration, optimizer or '
            'scheduler state), so it cannot be resumed. Start a new run from its weights with `load_from` '
            f'(--cfg-options load_from={filename}, without --resume), or load it for inference with '
            'transvae.apis.init_model(config, checkpoint).')

    old = model_config_from_text(meta.get('cfg'))
    new = _current_model_config(cfg)
    if old is None:
        warn(f'{filename} records no readable config text (meta.cfg): its model config could not be compared with '
             'the current one; resuming on the strength of matching shapes only.')
    elif isinstance(new, dict):
        diff = model_config_diff(old, new)
        if diff:
            listed = '; '.join(diff[:_MAX_LISTED]) + (f'; ... ({len(diff)} in all)' if len(diff) > _MAX_LISTED else '')
            if cfg.get('resume_allow_config_change', False):
                warn(f'resuming {filename} with a changed model config (--resume-allow-config-change): {listed}')
            else:
                raise ResumeConfigChangedError(
                    f'{filename} was trained with another model config ({len(diff)} key(s) differ: {listed}). '
                    'Resuming would continue a different model from these weights. Use the config it was trained '
                    'with, or pass --resume-allow-config-change (config key resume_allow_config_change=True) to '
                    'resume anyway.')

    pos = _schedule_position(train_loop, meta)
    if pos is not None:
        unit, done, total = pos
        option = '--max-iters' if unit == 'iteration' else '--epochs'
        if done == total:
            raise RunFinished(f'nothing to train: {filename} is at {unit} {done} of {total}, the end of the schedule '
                              f'(the run is finished). To train further, resume with a larger {option}.')
        if done > total:
            raise ResumeBeyondScheduleError(
                f'{filename} is at {unit} {done}, beyond the end of the schedule ({total}): resuming would skip the '
                f'data and train nothing. Give {option} larger than {done} to continue it, or start a new run from '
                'its weights with `load_from` (without --resume).')
