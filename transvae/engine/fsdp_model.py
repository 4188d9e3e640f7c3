"""What FSDP needs to know about a transvae model: which blocks become FSDP units (the auto-wrap policy), which
submodules stay out of the shards (frozen ones), and whether the model's training step is one FSDP can run.

Used by :class:`~transvae.engine.fsdp.TransVAEFSDPStrategy`; reads models through the registry and their attributes
only (the engine imports nothing from ``transvae.models``): a block says it is an FSDP unit with the class attribute
``fsdp_unit = True``, which every block of the model core inherits from its base class
(``transvae.models.blocks.Block``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
from mmengine.model import BaseModel
from torch import nn

from transvae.registry import FUNCTIONS, MODELS, resolve_type

__all__ = ['is_fsdp_unit', 'resolve_block_types', 'transvae_block_wrap_policy', 'frozen_submodules',
           'move_unmanaged_states', 'check_fsdp_model']


# ---------------------------------------------------------------------------------------------------------------------
# auto-wrap policy
# ---------------------------------------------------------------------------------------------------------------------
def is_fsdp_unit(module: nn.Module) -> bool:
    """Whether ``module``'s class declares itself one FSDP unit (``fsdp_unit = True``, e.g. every block)."""
    return getattr(type(module), 'fsdp_unit', False) is True


def resolve_block_types(block_types: Union[str, type, Sequence[Union[str, type]]]) -> tuple[type, ...]:
    """Classes of ``block_types``: names are looked up in the ``MODELS`` registry (so a user-registered block can
    be named), classes are taken as they are. An unknown name raises the registry's ``KeyError`` (with hints)."""
    if isinstance(block_types, (str, type)):
        block_types = [block_types]
    classes = []
    for t in block_types:
        cls = resolve_type(t, MODELS)
        if not issubclass(cls, nn.Module):
            raise TypeError(f'block_types: {t!r} is not an nn.Module class or the registered name of one')
        classes.append(cls)
    return tuple(classes)


@FUNCTIONS.register_module()
def transvae_block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                               block_types: Optional[Sequence[Union[str, type]]] = None) -> bool:
    """FSDP auto-wrap policy (the callable form of ``torch.distributed.fsdp.wrap``): one FSDP unit per block.

    Config: ``model_wrapper=dict(auto_wrap_policy=dict(type='transvae_block_wrap_policy'))``: every module whose
    class declares ``fsdp_unit = True`` (every block: ``TransVAEBlock``, ``ViTBlock``, ``SwinBlock``, ``ResBlock``,
    ``AttnBlock`` and any subclass of ``transvae.models.blocks.Block``, a user's included). ``block_types=[...]``
    (registered names or classes) replaces that choice by an explicit list of classes.

    Args:
        module: the candidate submodule.
        recurse: FSDP asks whether to descend into ``module`` (always yes) rather than whether to wrap it.
        nonwrapped_numel: parameters of ``module`` not yet in a unit (unused: the unit boundary is the block).
        block_types: the classes that become units (``None``: the classes that declare ``fsdp_unit``).

    Returns:
        whether to recurse (``recurse=True``) or to wrap ``module`` (``recurse=False``).
    """
    del nonwrapped_numel
    if recurse:
        return True
    if block_types is None:
        return is_fsdp_unit(module)
    return isinstance(module, resolve_block_types(block_types))


# ---------------------------------------------------------------------------------------------------------------------
# model checks
# ---------------------------------------------------------------------------------------------------------------------
def frozen_submodules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The top-most submodules of ``model`` (not ``model`` itself) that have parameters, all of them frozen.

    A module with at least one trainable parameter is never returned (it is searched further down instead);
    modules without parameters are skipped. Returns ``(qualified name, module)`` pairs in registration order.
    """
    found: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, parent: nn.Module) -> None:
        for name, child in parent.named_children():
            params = list(child.parameters())
            if not params:
                continue
            if not any(p.requires_grad for p in params):
                found.append((prefix + name, child))
            else:
                visit(f'{prefix}{name}.', child)

    visit('', model)
    return found


def move_unmanaged_states(model: nn.Module, ignored_modules: Sequence[nn.Module], device: torch.device) -> None:
    """Move to ``device`` what FSDP's own device move skips: ignored modules and hidden networks.

    FSDP moves the managed parameters and buffers one by one (``param.data = param.to(device)``), never through
    ``Module.to``: the parameters of ``ignored_modules`` stay where they are, and so do the frozen networks that are
    plain attributes (LPIPS, the VF foundation model; their owners forward ``_apply`` to them). On CUDA they would be
    left on the CPU. This moves them with ``Module.to`` (no-op where they already are).
    """
    for module in ignored_modules:
        module.to(device)
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, nn.Module):  # not a registered submodule (those live in `_modules`)
                value.to(device)


def check_fsdp_model(model: nn.Module) -> None:
    """Raise ``ValueError`` for a model that FSDP training through ``MMFullyShardedDataParallel`` would get wrong.

    ``MMFullyShardedDataParallel.train_step`` never calls the model's own ``train_step``: it runs the data
    preprocessor, ``forward(mode='loss')``, then one optimizer update. A model that overrides ``train_step`` is
    accepted only where it declares the two equal (``train_step_is_single_update``, e.g. ``VAEGAN`` without a
    discriminator). The check reads capabilities, not classes, so the engine imports nothing from ``models``.
    """
    if not isinstance(model, BaseModel) or type(model).train_step is BaseModel.train_step:
        return
    if getattr(model, 'train_step_is_single_update', False):
        return
    name = type(model).__name__
    if getattr(model, 'discriminator', None) is not None:
        raise ValueError(
            f'TransVAEFSDPStrategy does not support {name} with a discriminator (the GAN stage): '
            f"MMFullyShardedDataParallel.train_step runs one forward/backward/step and would skip {name}'s "
            'discriminator step and its second optimizer. Train the GAN stage with the default runner and '
            "model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False, "
            'find_unused_parameters=False) (drop `runner_type`/`strategy`): it freezes the encoder and trains '
            'only the decoder and the discriminator, which fit in DDP. Stage 1 (no discriminator) is supported.')
    raise ValueError(
        f'TransVAEFSDPStrategy: {name} overrides train_step, which '
        'MMFullyShardedDataParallel never calls (it runs forward(mode="loss"), backward and one optimizer step '
        'itself). Use the default runner with MMDistributedDataParallel / MMSeparateDistributedDataParallel.')
