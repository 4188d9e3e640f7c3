"""``torch.compile`` of a VAE's model computation: the training losses and the inference reconstruction.

The config switch is mmengine's own top-level ``compile`` key (``compile = True`` or ``compile = dict(mode=...,
backend=..., dynamic=..., fullgraph=...)``, ``--cfg-options compile=True``), read in one place,
:meth:`transvae.engine.runner.TransVAERunner._maybe_compile`, which mmengine calls before the first training step.
mmengine itself would compile the whole ``train_step`` (data pre-processor, optimizer wrapper, ``loss.backward()``,
optimizer step, the ``MessageHub`` reads): every one of those is a graph break. Here the compiled region is the model
computation only, which traces to one graph:

- training: the model's per-batch loss method (:data:`TRAIN_LOSS_METHODS`: ``VAEGAN.generator_losses``, called by
  its ``train_step``; ``VAE.loss``, called through ``forward(mode='loss')`` by mmengine's ``BaseModel.train_step``):
  encoder -> posterior -> sample -> decoder -> L1 + LPIPS + KL [+ VF with its adaptive weight], forward and backward
  (AOTAutograd). The optimizer step, gradient clipping and the logging stay eager.
- inference: ``reconstruct`` (encode -> posterior mean -> decode -> crop), used by validation / testing
  (``predict``). Tiling, when enabled, is a Python branch taken at trace time (a guard), so a tiled model compiles
  the tile loop as traced.

The VF loss's adaptive weight calls ``torch.autograd.grad`` inside the forward; dynamo traces it only with
``torch._dynamo.config.trace_autograd_ops`` on, which the compiled methods set around each call (not process-wide).

The compiled methods are instance attributes bound to the model (``types.MethodType``), so ``state_dict`` keys are
unchanged (no ``_orig_mod.`` prefix), ``copy.deepcopy`` binds the copy to the copied model, and
:func:`uncompile_model` restores the class's methods.
"""
from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from transvae.utils.errors import UserInputError

__all__ = ['TRAIN_LOSS_METHODS', 'INFERENCE_METHODS', 'CompileConfigError', 'parse_compile_cfg', 'compile_method',
           'compile_model', 'uncompile_model', 'train_loss_method', 'explain_method']

#: The per-batch loss method a model's ``train_step`` calls, first found wins (``VAEGAN.train_step`` calls
#: ``generator_losses``; mmengine's ``BaseModel.train_step`` reaches ``VAE.loss`` through ``forward(mode='loss')``).
TRAIN_LOSS_METHODS: tuple[str, ...] = ('generator_losses', 'loss')
#: The inference computation of validation / testing (``predict`` calls ``reconstruct``).
INFERENCE_METHODS: tuple[str, ...] = ('reconstruct', )
#: Keys of the ``compile`` dict that are ours; every other key goes to ``torch.compile``.
_OWN_KEYS = ('train', 'inference')
_TORCH_COMPILE_KEYS = ('fullgraph', 'dynamic', 'backend', 'mode', 'options', 'disable')


class CompileConfigError(UserInputError, ValueError):
    """A ``compile`` config value that is neither a bool nor a dict of known keys."""


def parse_compile_cfg(cfg: bool | dict | None) -> tuple[dict[str, bool], dict[str, Any]] | None:
    """Split the ``compile`` config value into our switches and ``torch.compile`` keyword arguments.

    Args:
        cfg: ``None`` / ``False`` (off), ``True`` (both parts, torch's defaults) or a dict with ``train`` (bool,
            default True), ``inference`` (bool, default True) and any of ``fullgraph``, ``dynamic``, ``backend``,
            ``mode``, ``options``, ``disable`` (passed to ``torch.compile``).

    Returns:
        ``None`` when off, else ``({'train': bool, 'inference': bool}, torch_compile_kwargs)``.

    Raises:
        CompileConfigError: another type, or an unknown key (named, with the known ones).
    """
    if cfg is None or cfg is False:
        return None
    if cfg is True:
        return {'train': True, 'inference': True}, {}
    if not isinstance(cfg, dict):
        raise CompileConfigError(f'compile must be a bool or a dict, got {type(cfg).__name__}: {cfg!r}')
    unknown = sorted(set(cfg) - set(_OWN_KEYS) - set(_TORCH_COMPILE_KEYS))
    if unknown:
        raise CompileConfigError(f'compile: unknown key(s) {unknown}; known: {list(_OWN_KEYS)} (ours) and '
                                 f'{list(_TORCH_COMPILE_KEYS)} (torch.compile)')
    own = {k: cfg.get(k, True) for k in _OWN_KEYS}
    for k, v in own.items():
        if not isinstance(v, bool):
            raise CompileConfigError(f'compile.{k} must be True or False, got {v!r}')
    kwargs = {k: v for k, v in cfg.items() if k in _TORCH_COMPILE_KEYS}
    if cfg.get('disable') is True or not any(own.values()):
        return None
    return own, kwargs


def train_loss_method(model: nn.Module) -> str:
    """Name of the per-batch loss method ``model``'s training step calls (see :data:`TRAIN_LOSS_METHODS`).

    Raises:
        CompileConfigError: the model has none of them.
    """
    for name in TRAIN_LOSS_METHODS:
        if callable(getattr(type(model), name, None)):
            return name
    raise CompileConfigError(f'compile: {type(model).__name__} has none of the loss methods {TRAIN_LOSS_METHODS}; '
                             'set compile.train=False')


def compile_method(model: nn.Module, name: str, **compile_kwargs: Any) -> Callable:
    """Replace ``model.<name>`` by a ``torch.compile``-d version bound to ``model`` (the class is untouched).

    Args:
        model: the module.
        name: a method defined on ``type(model)``.
        **compile_kwargs: passed to ``torch.compile``.

    Returns:
        the bound compiled method (also set as ``model.<name>``).
    """
    func = getattr(type(model), name)
    compiled = torch.compile(func, **compile_kwargs)

    @functools.wraps(func)
    def run(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        with torch._dynamo.config.patch(trace_autograd_ops=True):  # VF adaptive weight: autograd.grad in the graph
            return compiled(self, *args, **kwargs)

    run.__transvae_compiled__ = True  # type: ignore[attr-defined]
    bound = types.MethodType(run, model)
    setattr(model, name, bound)
    return bound


def explain_method(model: nn.Module, name: str, *args: Any, **kwargs: Any) -> Any:
    """``torch._dynamo.explain`` of ``type(model).<name>(model, *args, **kwargs)`` under the dynamo settings the
    compiled method runs with; ``.graph_break_count`` / ``.break_reasons`` say where a graph would split.

    Nothing is compiled (explain traces and runs the captured graphs eagerly); the method of the class is traced,
    so this works on a model whose method is already compiled too. It starts with ``torch._dynamo.reset()``: code
    compiled earlier in the process compiles again at its next call.
    """
    torch._dynamo.reset()
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        return torch._dynamo.explain(getattr(type(model), name))(model, *args, **kwargs)


def compile_model(model: nn.Module, cfg: bool | dict | None) -> list[str]:
    """Compile ``model``'s training loss method and / or its inference method, as ``cfg`` asks.

    Args:
        model: the unwrapped model (not a DDP wrapper: its methods are what ``train_step`` calls).
        cfg: the ``compile`` config value (see :func:`parse_compile_cfg`).

    Returns:
        the names of the methods compiled (empty when off).
    """
    parsed = parse_compile_cfg(cfg)
    if parsed is None:
        return []
    own, kwargs = parsed
    names = []
    if own['train']:
        names.append(train_loss_method(model))
    if own['inference']:
        names += [n for n in INFERENCE_METHODS if callable(getattr(type(model), n, None))]
    for name in names:
        compile_method(model, name, **kwargs)
    return names


def uncompile_model(model: nn.Module) -> list[str]:
    """Remove the compiled methods :func:`compile_model` set (the class's own methods apply again)."""
    removed = [k for k, v in list(vars(model).items())
               if isinstance(v, types.MethodType) and getattr(v.__func__, '__transvae_compiled__', False)]
    for k in removed:
        delattr(model, k)
    return removed
