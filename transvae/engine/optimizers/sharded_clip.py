"""Gradient-norm clipping when every rank holds only a shard of the gradients (FSDP).

``torch.nn.utils.clip_grad_norm_`` (what mmengine's ``OptimWrapper._clip_grad`` calls) sees only the local tensors.
Under FSDP (``FULL_SHARD`` / ``SHARD_GRAD_OP``) each rank holds a different shard of every gradient, so each rank
would compute a different "total" norm, clip with a different coefficient, and the shards of one parameter would
be scaled inconsistently. :func:`clip_grad_norm_sharded_` reduces the local ``sum |g|^p`` (``max |g|`` for
``p = inf``) over the ranks first, so every rank clips with the coefficient of the full, unsharded gradient.

:class:`ShardedGradClipMixin` plugs it into an optim wrapper: with ``sharded_grads=True`` (set by
:class:`~transvae.engine.fsdp.TransVAEFSDPStrategy`), ``clip_grad=dict(max_norm=...)`` uses the global norm and
logs it as ``train/grad_norm``; ``clip_grad=dict(type='value', ...)`` is element-wise and stays local.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Optional

import torch
import torch.distributed as torch_dist
from torch import Tensor

__all__ = ['clip_grad_norm_sharded_', 'ShardedGradClipMixin']


def _reduce_device(process_group: Optional[Any] = None) -> torch.device:
    """Device of the reduction tensor: the current CUDA device for NCCL, else the CPU (gloo)."""
    if torch_dist.get_backend(process_group) == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def clip_grad_norm_sharded_(params: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                            error_if_nonfinite: bool = False, foreach: Optional[bool] = None,
                            process_group: Optional[Any] = None) -> Tensor:
    """Clip gradients in place by the p-norm of the gradient concatenated over all ranks of ``process_group``.

    Collective: every rank of the group must call it (also a rank that holds no gradient; it contributes 0).

    Args:
        params: tensors whose ``.grad`` are this rank's (disjoint) shards; ``None`` grads are skipped.
        max_norm: the maximum global norm.
        norm_type: p of the p-norm (``float('inf')`` for the max norm).
        error_if_nonfinite: raise ``RuntimeError`` (on every rank alike) if the global norm is NaN or Inf.
        foreach: accepted for signature compatibility with ``torch.nn.utils.clip_grad_norm_``; unused.
        process_group: the group the gradients are sharded over (``None``: the default group). Outside a
            distributed run this is ``clip_grad_norm_`` on the local gradients.

    Returns:
        the global norm, a float32 scalar tensor on the gradients' device (on every rank the same value).
    """
    del foreach
    if isinstance(params, Tensor):
        params = [params]
    grads = [p.grad for p in params if p.grad is not None]
    norm_type = float(norm_type)
    distributed = torch_dist.is_available() and torch_dist.is_initialized()
    device = _reduce_device(process_group) if distributed else (grads[0].device if grads else torch.device('cpu'))
    norms = [torch.linalg.vector_norm(g.detach(), norm_type, dtype=torch.float32).to(device) for g in grads]
    if math.isinf(norm_type):
        local = torch.stack(norms).max() if norms else torch.zeros((), device=device)
        if distributed:
            torch_dist.all_reduce(local, op=torch_dist.ReduceOp.MAX, group=process_group)
        total = local
    else:
        local = (torch.stack(norms) ** norm_type).sum() if norms else torch.zeros((), device=device)
        if distributed:
            torch_dist.all_reduce(local, op=torch_dist.ReduceOp.SUM, group=process_group)
        total = local ** (1.0 / norm_type)
    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise RuntimeError(f'The total norm of order {norm_type} of the (sharded) gradients is non-finite, so it '
                           'cannot be clipped. To skip such steps instead, use SafeOptimWrapper (it does by '
                           'default) and set error_if_nonfinite=False.')
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # the same formula as torch.nn.utils.clip_grad_norm_
    for g in grads:
        g.detach().mul_(coef.to(device=g.device, dtype=g.dtype))
    return total.to(grads[0].device) if grads else total


class ShardedGradClipMixin:
    """Optim-wrapper mixin: clip by the global gradient norm when the gradients are sharded over ranks.

    Must come before the :class:`~mmengine.optim.OptimWrapper` class in the bases. Attributes (set by the FSDP
    strategy, or by the ``sharded_grads`` constructor argument of the wrappers that use this mixin):
        sharded_grads: the gradients are disjoint shards (FSDP ``FULL_SHARD`` / ``SHARD_GRAD_OP``).
        grad_process_group: the group they are sharded over (``None``: the default group).
    """

    sharded_grads: bool = False
    grad_process_group: Optional[Any] = None

    def _clip_grad(self) -> None:
        if not self.sharded_grads or getattr(self, 'grad_name', None) != 'grad_norm':
            super()._clip_grad()  # type: ignore[misc]  # local norm, or element-wise value clipping
            return
        params = [p for group in self.optimizer.param_groups for p in group['params']  # type: ignore[attr-defined]
                  if p.requires_grad and p.grad is not None]
        # every rank reduces, also one without a local gradient (mmengine skips the call then: a deadlock here)
        total = clip_grad_norm_sharded_(params, process_group=self.grad_process_group,
                                        **self.clip_grad_kwargs)  # type: ignore[attr-defined]
        self.message_hub.update_scalar(f'train/{self.grad_name}', float(total))  # type: ignore[attr-defined]
