"""Child registries of every MMEngine root registry, under the scope ``transvae``.

Every registry here searches its ``locations`` lazily, so ``MODELS.build(dict(type='TransVAEEncoder'))`` works
without importing the model package first. An unknown ``type`` raises a ``KeyError`` that names the registry and
the closest registered names (``difflib``), instead of MMEngine's generic message. :func:`resolve_type` is the one
way to ask which class a config dict (or a type name) stands for, so that code tests a class or a capability, never a
name.
"""
from __future__ import annotations

import difflib
from typing import Any

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry


class TransVAERegistry(Registry):
    """A :class:`mmengine.Registry` whose failed look-ups say what is registered.

    ``get`` returns the class as usual; where MMEngine would return ``None`` (and later raise a bare
    "X is not in the registry"), this raises a ``KeyError`` that names the registry and suggests the closest names.
    """

    def available(self) -> list[str]:
        """Names visible from this registry: its own, then its ancestors'."""
        self.import_from_location()
        names: list[str] = list(self._module_dict)
        parent = self.parent
        while parent is not None:
            names.extend(k for k in parent._module_dict if k not in names)
            parent = parent.parent
        return names

    def get(self, key: Any) -> Any:
        obj = super().get(key)
        if obj is None and isinstance(key, str):
            _, real_key = self.split_scope_key(key)
            names = self.available()
            close = difflib.get_close_matches(real_key, names, n=5, cutoff=0.5)
            if not close:
                close = [n for n in names if real_key.lower() in n.lower()][:5]
            hint = f' Did you mean: {", ".join(close)}?' if close else ''
            own = sorted(self._module_dict)
            raise KeyError(
                f"'{key}' is not registered in the {self.scope}::{self.name} registry.{hint} "
                f'Registered in transvae: {", ".join(own) if own else "(none)"}.')
        return obj


def resolve_type(spec: Any, registry: Registry, *, missing_ok: bool = False) -> type | None:
    """The class that a config dict, a registered name or a class stands for in ``registry``.

    The one look-up behind every "what class does this config name" question (a dataset's ``check_data_root``, a
    runner that must be a ``FlexibleRunner``, a sampler that must be finite, the FSDP block types, ...): code asks the
    class for a capability or a base class, never tests its name.

    Args:
        spec: a config dict (its ``type``), a ``type`` value (a registered name, optionally scoped such as
            ``'mmengine.Runner'``, or a class), or an instance (its class).
        registry: the registry that builds ``spec`` (e.g. ``MODELS`` or ``DATASETS``); its ``locations`` are imported.
        missing_ok: return ``None`` instead of raising where ``spec`` names no class (no ``type``, an unregistered
            name, a registered function).

    Returns:
        the class (``None`` only with ``missing_ok``).

    Raises:
        KeyError: an unregistered name; the message names the registry, the closest registered names and what is
            registered (:class:`TransVAERegistry`).
        TypeError: ``spec`` has no ``type`` or names something that is not a class.
    """
    if isinstance(spec, dict):
        typ = spec.get('type')
    elif spec is None or isinstance(spec, (str, type)):
        typ = spec
    else:
        typ = type(spec)  # an instance (a built transform, hook, ...)
    if isinstance(typ, str):
        try:
            typ = registry.get(typ)
        except KeyError:
            if missing_ok:
                return None
            raise
        if typ is None:  # a plain mmengine registry answers None where TransVAERegistry raises
            if missing_ok:
                return None
            names = ', '.join(sorted(registry.module_dict)) or '(none)'
            raise KeyError(f'{spec!r} is not registered in the {registry.scope}::{registry.name} registry. '
                           f'Registered: {names}.')
    if isinstance(typ, type):
        return typ
    if missing_ok:
        return None
    raise TypeError(f'{spec!r} names no class of the {registry.scope}::{registry.name} registry (expected a '
                    "registered name, a class or a config dict with one as its 'type').")


def _child(name: str, parent: Registry, locations: list[str]) -> TransVAERegistry:
    return TransVAERegistry(name, parent=parent, scope='transvae', locations=locations)


RUNNERS = _child('runner', MMENGINE_RUNNERS, ['transvae.engine'])
RUNNER_CONSTRUCTORS = _child('runner constructor', MMENGINE_RUNNER_CONSTRUCTORS, ['transvae.engine'])
LOOPS = _child('loop', MMENGINE_LOOPS, ['transvae.engine'])
HOOKS = _child('hook', MMENGINE_HOOKS, ['transvae.engine'])
STRATEGIES = _child('strategy', MMENGINE_STRATEGIES, ['transvae.engine'])
DATASETS = _child('dataset', MMENGINE_DATASETS, ['transvae.datasets'])
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, ['transvae.datasets'])
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, ['transvae.datasets'])
MODELS = _child('model', MMENGINE_MODELS, ['transvae.models'])
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, ['transvae.models'])
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS, ['transvae.models'])
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, ['transvae.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS, ['transvae.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor', MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                    ['transvae.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, ['transvae.engine'])
METRICS = _child('metric', MMENGINE_METRICS, ['transvae.evaluation'])
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, ['transvae.evaluation'])
TASK_UTILS = _child('task util', MMENGINE_TASK_UTILS, ['transvae.models'])
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, ['transvae.visualization'])
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, ['transvae.visualization'])
LOG_PROCESSORS = _child('log_processor', MMENGINE_LOG_PROCESSORS, ['transvae.engine'])
INFERENCERS = _child('inferencer', MMENGINE_INFERENCERS, ['transvae.apis'])
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, ['transvae.datasets', 'transvae.engine'])
