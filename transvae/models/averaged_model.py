"""EMA of the trainable generator weights only, working under ``MMSeparateDistributedDataParallel``.

mmengine's :class:`~mmengine.model.ExponentialMovingAverage` deep-copies the whole model and averages every
parameter. For the GAN stage (:class:`~transvae.models.autoencoders.VAEGAN`) that means:

* under ``MMSeparateDistributedDataParallel`` the copy contains the DDP wrappers of the trainable submodules, so the
  EMA's keys read ``module.decoder.module.conv_in.weight`` and no longer match the model's checkpoint keys
  (``decoder.conv_in.weight``): EMAHook's checkpoint swap fails and a resumed EMA would not load;
* the frozen encoder and the discriminator are copied and "averaged" every step (the encoder never changes; the
  evaluation never uses the discriminator), and the hidden frozen networks (LPIPS, the VF foundation model:
  DINOv2-L in the paper) are duplicated in memory.

:class:`TrainableEMA` copies only the submodules that hold an averaged parameter (the trainable ones outside
``exclude``: decoder, NLL log-variance, and the encoder / VF projection in stage 1), with the wrappers removed; every
other submodule, every frozen parameter and every hidden network is *shared* with the model (the same objects, no
extra memory). The copy has the model's unwrapped structure, so EMAHook's parameter swap (which pairs
``ema.module.parameters()`` with ``model.parameters()`` in order) and its checkpoint swap (``module.X`` <-> ``X``)
work unchanged, and ``ema_state_dict`` has the plain model's keys (shared entries hold the model's own values).
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Optional

import torch
from mmengine.model import ExponentialMovingAverage
from torch import Tensor, nn

from transvae.registry import MODELS

from .utils.unwrap import unwrap_model

__all__ = ['TrainableEMA', 'named_tensors_unwrapped']


def named_tensors_unwrapped(model: nn.Module, buffers: bool = False) -> Iterator[tuple[str, Tensor]]:
    """``named_parameters()`` (or ``named_buffers()``) of ``model`` as if no submodule were wrapped.

    Under ``MMSeparateDistributedDataParallel`` the trainable children are DDP wrappers, which insert ``module.``
    into the names (``decoder.module.conv_in.weight``); these names are the plain model's (``decoder.conv_in.weight``).
    """
    seen: set[int] = set()

    def visit(module: nn.Module, prefix: str) -> Iterator[tuple[str, Tensor]]:
        module = unwrap_model(module)
        tensors = module._buffers if buffers else module._parameters
        for name, t in tensors.items():
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                yield prefix + name, t
        for name, child in module._modules.items():
            if child is not None:
                yield from visit(child, f'{prefix}{name}.')

    yield from visit(model, '')


def _named_modules_unwrapped(model: nn.Module) -> Iterator[tuple[str, nn.Module, Optional[nn.Module]]]:
    """``(name, module, its wrapper or None)`` over the unwrapped tree, parents before children."""

    def visit(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module, Optional[nn.Module]]]:
        inner = unwrap_model(module)
        yield prefix, inner, (module if inner is not module else None)
        for name, child in inner._modules.items():
            if child is not None:
                yield from visit(child, f'{prefix}.{name}' if prefix else name)

    yield from visit(model, '')


@MODELS.register_module()
class TrainableEMA(ExponentialMovingAverage):
    """``Xema <- (1 - momentum) * Xema + momentum * X`` over the trainable parameters outside ``exclude`` only.

    Used by ``EMAHook`` (``TransVAERunner`` makes it the default; see :class:`~transvae.engine.hooks.
    TransVAEEMAHook`). See the module docstring for what is copied and what is shared.

    Args:
        model: the model to average; its submodules may be model wrappers (``MMSeparateDistributedDataParallel``).
        momentum: EMA momentum (``1 - decay``; 1e-4 = decay 0.9999).
        interval: update every ``interval`` calls.
        device: keep the averaged tensors on this device (the shared ones stay where the model has them).
        update_buffers: also average the floating-point buffers of the copied submodules (else they are copied from
            the model at every update, as mmengine does).
        exclude: dotted names of submodules that are never averaged (shared with the model); names not in the
            model are ignored. Defaults to ``('discriminator',)``.

    Attributes:
        avg_parameters: ``{name: averaged tensor}`` with the plain model's names.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.0002, interval: int = 1,
                 device: Optional[torch.device] = None, update_buffers: bool = False,
                 exclude: Sequence[str] = ('discriminator',)) -> None:
        if not 0.0 < momentum < 1.0:
            raise ValueError(f'momentum must be in (0, 1), got {momentum}')
        nn.Module.__init__(self)  # not BaseAveragedModel.__init__: it deep-copies (and freezes) the whole model
        self.momentum = momentum
        self.interval = interval
        self.update_buffers = update_buffers
        self.exclude = tuple(exclude)
        self.register_buffer('steps', torch.tensor(0, dtype=torch.long, device=device))

        src = unwrap_model(model)
        excluded = tuple(f'{name}.' for name in self.exclude)
        averaged = {name for name, p in named_tensors_unwrapped(src)
                    if p.requires_grad and not (name + '.').startswith(excluded)}
        src_params = dict(named_tensors_unwrapped(src))
        averaged_ids = {id(src_params[n]) for n in averaged}

        memo: dict[int, object] = {}
        for p in src_params.values():  # frozen and excluded parameters: shared
            if id(p) not in averaged_ids:
                memo[id(p)] = p
        to_copy: list[tuple[nn.Module, nn.Module]] = []  # (wrapper, inner) of wrapped modules that are copied
        for _, module, wrapper in _named_modules_unwrapped(src):
            for value in vars(module).values():  # hidden networks (LPIPS, foundation): plain attributes, shared
                if isinstance(value, nn.Module):
                    memo[id(value)] = value
            if not any(id(p) in averaged_ids for p in module.parameters()):
                memo[id(module)] = module  # nothing averaged below: share the whole submodule
                if wrapper is not None:
                    memo[id(wrapper)] = module
            elif wrapper is not None:
                to_copy.append((wrapper, module))
        for wrapper, inner in reversed(to_copy):  # innermost first: a copied wrapper maps to a copy of its module
            memo[id(wrapper)] = copy.deepcopy(inner, memo)
        self.module = copy.deepcopy(src, memo)

        own = dict(self.module.named_parameters())
        if list(own) != list(src_params):
            raise RuntimeError('TrainableEMA: the copy does not have the model\'s parameter structure')
        self.avg_parameters = {name: own[name] for name in src_params if name in averaged}
        for name, p in self.avg_parameters.items():
            if p is src_params[name]:
                raise RuntimeError(f'TrainableEMA: {name} was not copied')
            p.requires_grad_(False)
            if device is not None:
                p.data = p.data.to(device)
        src_buffer_ids = {id(b) for _, b in named_tensors_unwrapped(src, buffers=True)}
        self.own_buffers = {name: b for name, b in self.module.named_buffers() if id(b) not in src_buffer_ids}
        if device is not None:
            for b in self.own_buffers.values():
                b.data = b.data.to(device)

    # ------------------------------------------------------------------ averaging
    def update_parameters(self, model: nn.Module) -> None:
        """One EMA step from ``model`` (wrapped or not): copy at the first call, average every ``interval``."""
        src = dict(named_tensors_unwrapped(model))
        src_buffers = dict(named_tensors_unwrapped(model, buffers=True))
        step = int(self.steps)
        if step == 0:
            for name, p_avg in self.avg_parameters.items():
                p_avg.data.copy_(src[name].data)
        elif step % self.interval == 0:
            for name, p_avg in self.avg_parameters.items():
                if p_avg.dtype.is_floating_point:
                    self.avg_func(p_avg.data, src[name].data.to(p_avg.device), step)
        for name, b_avg in self.own_buffers.items():
            b_src = src_buffers[name].data.to(b_avg.device)
            if self.update_buffers and step > 0 and step % self.interval == 0 and b_avg.dtype.is_floating_point:
                self.avg_func(b_avg.data, b_src, step)
            elif not self.update_buffers or step == 0:
                b_avg.data.copy_(b_src)
        self.steps += 1

    def copy_from(self, model: nn.Module) -> None:
        """Set the averaged tensors to ``model``'s current values (EMAHook before its ``begin_iter``)."""
        src = dict(named_tensors_unwrapped(model))
        src_buffers = dict(named_tensors_unwrapped(model, buffers=True))
        for name, p_avg in self.avg_parameters.items():
            p_avg.data.copy_(src[name].data)
        for name, b_avg in self.own_buffers.items():
            b_avg.data.copy_(src_buffers[name].data)
