"""The module inside model wrappers: mmengine's (``MMDistributedDataParallel``, ``MMSeparateDistributedDataParallel``,
``MMFullyShardedDataParallel``) and torch's DDP, as mmengine's ``is_model_wrapper`` recognises them.

Under ``MMSeparateDistributedDataParallel`` the trainable children of a model are DDP wrappers: a model reaches their
attributes through :func:`unwrap_model` and calls their forwards through the wrappers (so gradients are synchronised).
"""
from __future__ import annotations

from mmengine.model import is_model_wrapper
from torch import nn

__all__ = ['unwrap_model']


def unwrap_model(module: nn.Module) -> nn.Module:
    """``module`` with any stack of mmengine / torch model wrappers (``.module``) removed (itself when unwrapped)."""
    while is_model_wrapper(module):
        module = module.module
    return module
