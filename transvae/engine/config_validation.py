"""Config mistakes that mmengine would ignore or report without a hint: misspelt keys, unknown keyword arguments.

* :func:`check_cfg_options`: a ``--cfg-options`` key whose top-level name is neither in the config nor a key the
  Runner reads (``train_cfgg.max_iters=1``) is an error with a "did you mean" (mmengine would add the key and
  ignore it). :func:`merge_cfg_options` checks, then merges.
* :func:`check_top_level_keys`: a top-level key of a config file that is not a Runner key but is one typo away from
  one (``optim_wraper``) is an error; other helper variables (``data_root``, ``train_pipeline``) are allowed.
* :func:`read_config`: a syntax error names the file and the line (mmengine says ``<unknown>``).
* :func:`check_config_values`: a well-known numeric key (:data:`NUMERIC_KEYS`: ``train_cfg.max_iters``, a
  dataloader's ``batch_size``, an optimizer's ``lr``, ...) holding a non-number or an out-of-range number
  (``--cfg-options train_cfg.max_iters=ten``, ``train_dataloader.batch_size=-1``) is an error naming the key, before
  the Runner is built.
* :func:`config_errors`: the ``TypeError`` of a misspelt nested keyword (``optimizer=dict(type='AdamW', lrr=...)``)
  is re-raised with the accepted argument names and a "did you mean", as an unknown ``type`` gets.

Every command and ``init_model`` apply these in one order through :func:`transvae.apis.entry.load_config`.
"""
from __future__ import annotations

import contextlib
import difflib
import inspect
import re
from collections.abc import Iterator
from typing import Any, Optional

from transvae.utils.errors import UserInputError


#: top-level keys read by mmengine's Runner / FlexibleRunner or by transvae's tools (besides their arguments)
_EXTRA_KEYS = {
    'runner_type', 'default_scope', 'custom_imports', 'presets', 'model_presets', 'work_dir', 'launcher', 'resume',
    'load_from', 'log_level', 'log_processor', 'visualizer', 'default_hooks', 'custom_hooks', 'env_cfg', 'randomness',
    'experiment_name', 'auto_scale_lr', 'strategy', 'compile', 'cfg', 'filename', 'text', 'pretty_text', 'vis_backends',
    'gpu_ids', 'dist_params', 'workflow', 'checkpoint_config', 'log_config', 'data_root', 'dataset_type',
    'backend_args', 'train_pipeline', 'test_pipeline', 'val_pipeline', 'model_wrapper_cfg', 'find_unused_parameters',
    'test_report',  # a report layout registered in FUNCTIONS (transvae.evaluation.protocol.single_report)
    'resume_allow_config_change',  # tools/train.py --resume-allow-config-change (transvae.engine.resume_checks)
}


class ConfigSyntaxError(UserInputError, SyntaxError):
    """A config file (or one of its ``_base_`` files) that is not valid Python, with its path and line."""


def read_config(path: str) -> Any:
    """``Config.fromfile(path)``; a syntax error names the file and line (mmengine reports ``<unknown>``)."""
    from mmengine.config import Config
    try:
        return Config.fromfile(path)
    except SyntaxError as e:
        bad = _find_syntax_error(path)
        where = f'{bad[0]}, line {bad[1]}' if bad else f'{path} or one of its _base_ files, line {e.lineno}'
        raise ConfigSyntaxError(f'syntax error in config {where}: {e.msg}') from None


def _find_syntax_error(path: str, seen: Optional[set] = None) -> Optional[tuple[str, int]]:
    """The first file among ``path`` and its relative ``_base_`` files that does not parse, with the line."""
    import ast
    import os.path as osp
    seen = seen if seen is not None else set()
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    try:
        tree = ast.parse(open(path, encoding='utf-8').read(), filename=path)
    except SyntaxError as e:
        return path, int(e.lineno or 0)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                continue
            for b in ([bases] if isinstance(bases, str) else list(bases)):
                found = _find_syntax_error(osp.join(osp.dirname(path), b), seen)
                if found:
                    return found
    return None


class ConfigKeyError(UserInputError, KeyError):
    """A config key that nothing reads (a typo)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ''


def runner_keys() -> set[str]:
    """Every top-level key the Runner (or FlexibleRunner) or the tools read."""
    from mmengine.runner import FlexibleRunner, Runner
    keys = set(_EXTRA_KEYS)
    for cls in (Runner, FlexibleRunner):
        keys.update(p for p in inspect.signature(cls.__init__).parameters if p not in ('self', 'kwargs'))
    return keys


def _suggest(name: str, choices: Any, cutoff: float = 0.75) -> str:
    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=cutoff)
    return f" Did you mean '{close[0]}'?" if close else ''


def check_cfg_options(cfg: Any, cfg_options: Optional[dict]) -> None:
    """Refuse ``--cfg-options`` keys whose top-level name the config does not have and the Runner does not read.

    Args:
        cfg: the config *before* the options are merged.
        cfg_options: the parsed ``--cfg-options`` dict (dotted keys).

    Raises:
        ConfigKeyError: with the closest existing key.
    """
    if not cfg_options:
        return
    existing = set(cfg.keys()) if hasattr(cfg, 'keys') else set()
    known = existing | runner_keys()
    for key in cfg_options:
        top = str(key).split('.', 1)[0]
        if top not in known:
            raise ConfigKeyError(f"--cfg-options {key}: the config has no key '{top}' and the Runner reads none, so "
                                 f'the option would be ignored.{_suggest(top, known)}')


def merge_cfg_options(cfg: Any, cfg_options: Optional[dict]) -> None:
    """Merge ``--cfg-options`` into ``cfg`` after :func:`check_cfg_options` (a misspelt key is refused, not added)."""
    if not cfg_options:
        return
    check_cfg_options(cfg, cfg_options)
    cfg.merge_from_dict(cfg_options)


def check_top_level_keys(cfg: Any) -> None:
    """Refuse a top-level key that is one typo away from a Runner key (``optim_wraper``, ``train_cfgg``)."""
    known = runner_keys()
    for key in (cfg.keys() if hasattr(cfg, 'keys') else []):
        if key in known or str(key).startswith('_'):
            continue
        hint = _suggest(str(key), known, cutoff=0.85)
        if hint:
            raise ConfigKeyError(f"config key '{key}' is read by nothing (the Runner would ignore it).{hint}")


# ---------------------------------------------------------------------------------------------------------------------
# numeric values
# ---------------------------------------------------------------------------------------------------------------------
class ConfigValueError(UserInputError, ValueError):
    """A config value of the wrong type or range (a non-number where a number is required, a zero batch size)."""


#: kind -> (test, what is expected); ``bool`` is not a number here (``max_iters=True`` is a mistake)
_KINDS: dict[str, tuple[Any, str]] = {
    'positive_int': (lambda v: _is_int(v) and v >= 1, 'a positive integer (>= 1)'),
    'non_negative_int': (lambda v: _is_int(v) and v >= 0, 'a non-negative integer (>= 0)'),
    'interval': (lambda v: _is_int(v) and (v >= 1 or v == -1), 'a positive integer, or -1 (never)'),
    'positive_float': (lambda v: _is_real(v) and v > 0, 'a positive finite number (> 0)'),
    'non_negative_float': (lambda v: _is_real(v) and v >= 0, 'a non-negative finite number (>= 0)'),
}

_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
#: (dotted key, kind): the numeric keys every tool reads; ``*`` matches any one key (the generator / discriminator
#: wrappers of a multi-optimizer ``optim_wrapper``). A key that is absent or ``None`` is not checked.
NUMERIC_KEYS: tuple[tuple[str, str], ...] = (
    ('train_cfg.max_iters', 'positive_int'),
    ('train_cfg.max_epochs', 'positive_int'),
    ('train_cfg.val_interval', 'positive_int'),
    ('train_cfg.val_begin', 'non_negative_int'),
    *((f'{dl}.batch_size', 'positive_int') for dl in _LOADERS),
    *((f'{dl}.num_workers', 'non_negative_int') for dl in _LOADERS),
    ('optim_wrapper.optimizer.lr', 'positive_float'),
    ('optim_wrapper.optimizer.weight_decay', 'non_negative_float'),
    ('optim_wrapper.accumulative_counts', 'positive_int'),
    ('optim_wrapper.clip_grad.max_norm', 'positive_float'),
    ('optim_wrapper.*.optimizer.lr', 'positive_float'),
    ('optim_wrapper.*.optimizer.weight_decay', 'non_negative_float'),
    ('optim_wrapper.*.accumulative_counts', 'positive_int'),
    ('optim_wrapper.*.clip_grad.max_norm', 'positive_float'),
    ('default_hooks.checkpoint.interval', 'interval'),
    ('default_hooks.checkpoint.max_keep_ckpts', 'interval'),
    ('default_hooks.logger.interval', 'positive_int'),
    ('randomness.seed', 'non_negative_int'),
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    import math
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _lookup(node: Any, parts: list[str], prefix: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every match of ``parts`` under ``node`` (``*``: any key)."""
    if not parts:
        yield prefix, node
        return
    if not hasattr(node, 'keys'):  # a dict, a ConfigDict or the Config itself
        return
    head, rest = parts[0], parts[1:]
    keys = [k for k in node.keys() if hasattr(node[k], 'keys')] if head == '*' else (
        [head] if head in node.keys() else [])
    for k in keys:
        yield from _lookup(node[k], rest, f'{prefix}.{k}' if prefix else str(k))


def check_config_values(cfg: Any) -> None:
    """Refuse a value of :data:`NUMERIC_KEYS` that is not a number of the required kind.

    Args:
        cfg: the resolved config (after presets, shortcuts and ``--cfg-options``).

    Raises:
        ConfigValueError: naming the key, the value and what is expected (the first offender).
    """
    for pattern, kind in NUMERIC_KEYS:
        ok, expected = _KINDS[kind]
        for key, value in _lookup(cfg, pattern.split('.'), ''):
            if value is None:
                continue
            if not ok(value):
                raise ConfigValueError(f'config key {key} = {value!r}: expected {expected} (set it in the config or '
                                       f'with --cfg-options {key}=...).')


_UNEXPECTED = re.compile(r"(?:(\w+)\.)?__init__\(\) got an unexpected keyword argument '(\w+)'")


def _find_class(name: str) -> Optional[type]:
    """A class of that name in the transvae / mmengine registries (any registry, any scope)."""
    import mmengine.registry as mm_reg

    import transvae.registry as tv_reg
    regs = [v for mod in (tv_reg, mm_reg) for v in vars(mod).values() if isinstance(v, mm_reg.Registry)]
    for reg in regs:
        try:
            obj = reg.get(name)
        except Exception:  # noqa: BLE001 - registries raise on scope lookups of unknown names
            obj = None
        if isinstance(obj, type):
            return obj
    return None


def enrich_unknown_kwarg(err: TypeError) -> Optional[TypeError]:
    """A ``TypeError`` naming the accepted arguments and the closest one, for an unexpected keyword; else ``None``."""
    m = _UNEXPECTED.search(str(err))
    if not m:
        return None
    cls_name, arg = m.group(1), m.group(2)
    cls = _find_class(cls_name) if cls_name else None
    if cls is None:
        return TypeError(f'{err} (check the spelling of {arg!r} in the config)')
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ('self', 'args', 'kwargs')]
    return TypeError(f'{cls_name} got an unknown argument {arg!r} from the config.{_suggest(arg, params, 0.6)} '
                     f'{cls_name} accepts: {", ".join(params)}.')


@contextlib.contextmanager
def config_errors(exit_on_error: bool = False) -> Iterator[None]:
    """Re-raise a misspelt-keyword ``TypeError`` with a "did you mean".

    With ``exit_on_error`` (the tools) that error and every :class:`~transvae.utils.errors.UserInputError` (a config
    key, value or syntax error; a refused checkpoint, resume, output path, data root, latent shard, FID statistics
    file, busy work dir, ...) end the process with ``error: <message>`` and exit status 1 instead of a traceback.
    """
    try:
        yield
    except UserInputError as e:
        if exit_on_error:
            raise SystemExit(f'error: {e}') from None
        raise
    except TypeError as e:
        better = enrich_unknown_kwarg(e)
        if better is None:
            raise
        if exit_on_error:
            raise SystemExit(f'error: {better}') from None
        raise better from e
