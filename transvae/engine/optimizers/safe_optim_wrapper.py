"""Optimizer wrappers that skip non-finite steps instead of writing NaN into the weights.

``SafeOptimWrapper`` (fp32) and ``SafeAmpOptimWrapper`` (autocast; bf16 on CPU, fp16 or bf16 on GPU) share
:class:`NonFiniteGuardMixin`: before every optimizer step the loss and all gradients are checked (the decision is
all-reduced, so every DDP rank skips together). A skipped step zeroes the gradients, increments the message-hub
runtime info ``nonfinite_steps`` and logs a warning naming the iteration. After ``max_consecutive`` skips in a row a
``RuntimeError`` stops training; since no step was applied, the weights and the last checkpoint are still finite.

Both also take ``sharded_grads`` (:class:`~transvae.engine.optimizers.sharded_clip.ShardedGradClipMixin`): under FSDP
``clip_grad=dict(max_norm=...)`` then clips by the norm of the full gradient, all-reduced over the ranks. The FSDP
strategy sets it; leave it ``False`` otherwise.
"""
from __future__ import annotations

import logging
import math
from typing import Optional, Union

import torch
import torch.distributed as torch_dist
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from transvae.registry import OPTIM_WRAPPERS

from .sharded_clip import ShardedGradClipMixin

NONFINITE_KEY = 'nonfinite_steps'


def _current_iter() -> Optional[int]:
    try:
        return MessageHub.get_current_instance().get_info('iter')
    except Exception:  # noqa: BLE001 - no hub outside a Runner
        return None


def _any_rank(flag: bool) -> bool:
    """``flag`` OR-reduced over all ranks (a no-op outside distributed runs)."""
    if torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        backend = torch_dist.get_backend()
        device = 'cuda' if backend == 'nccl' else 'cpu'
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch_dist.all_reduce(t)
        return bool(t.item() > 0)
    return flag


class NonFiniteGuardMixin:
    """Skip optimizer steps whose loss or gradients are not finite; abort after too many in a row.

    Must come before the :class:`OptimWrapper` class in the bases. Args (keyword only, consumed here):
        max_consecutive: consecutive skipped steps that abort training with a ``RuntimeError``.
        check_grads: also check every gradient (``False`` checks the loss only).
    """

    optimizer: torch.optim.Optimizer

    def _init_guard(self, max_consecutive: int = 5, check_grads: bool = True) -> None:
        if max_consecutive < 1:
            raise ValueError(f'max_consecutive must be >= 1, got {max_consecutive}')
        self.max_consecutive = int(max_consecutive)
        self.check_grads = bool(check_grads)
        self.consecutive_nonfinite = 0
        self.applied_steps = 0  # optimizer steps applied (AtomicCheckpointHook: a checkpoint is proven by the next)
        self._loss_nonfinite = False

    # -- checks --------------------------------------------------------------------------------------------------
    def _note_loss(self, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            self._loss_nonfinite = True

    def _grads_finite(self) -> bool:
        if not self.check_grads:
            return True
        grads = [p.grad for group in self.optimizer.param_groups for p in group['params'] if p.grad is not None]
        if not grads:
            return True
        flags = torch.stack([torch.isfinite(g).all() for g in grads])
        return bool(flags.all())

    def _step_is_finite(self) -> bool:
        bad = self._loss_nonfinite or not self._grads_finite()
        self._loss_nonfinite = False
        return not _any_rank(bad)

    def _bad_lr(self) -> Optional[str]:
        """A learning rate the parameters' dtype cannot represent (torch would fail inside the optimizer)."""
        for group in self.optimizer.param_groups:
            lr = group.get('lr')
            lr = float(lr.item() if torch.is_tensor(lr) else lr)
            params = [p for p in group['params'] if p.is_floating_point()]
            limit = max((torch.finfo(p.dtype).max for p in params), default=torch.finfo(torch.float32).max)
            if not math.isfinite(lr) or abs(lr) >= limit:
                return f'learning rate {lr:g} (not representable in the parameters\' dtype)'
        return None

    def _record_skip(self, reason: str) -> None:
        """Zero grads, count, warn; raise after ``max_consecutive`` skips in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        self.consecutive_nonfinite += 1
        it = _current_iter()
        try:
            hub = MessageHub.get_current_instance()
            hub.update_info(NONFINITE_KEY, int(hub.get_info(NONFINITE_KEY, 0) or 0) + 1)
        except Exception:  # noqa: BLE001
            pass
        print_log(f'Non-finite {reason} at iteration {it}: optimizer step skipped '
                  f'({self.consecutive_nonfinite}/{self.max_consecutive} in a row).',
                  logger='current', level=logging.WARNING)
        if self.consecutive_nonfinite >= self.max_consecutive:
            raise RuntimeError(
                f'Training aborted at iteration {it}: {self.consecutive_nonfinite} consecutive optimizer steps had a '
                f'non-finite loss or gradients (NaN/Inf). None of these steps was applied and no checkpoint is '
                f'written with non-finite weights, so the last good checkpoint in the work_dir (see its '
                f'`last_checkpoint` file, which only names checkpoints whose weights gave a finite step) is intact. '
                f'Resume from it with a lower learning rate: `python tools/train.py CONFIG --resume --resume-lr LR` '
                f'(a resumed optimizer and scheduler would otherwise restore the old one), or add `clip_grad`, or '
                f'disable mixed precision. Reason: {reason}.')

    def _record_ok(self) -> None:
        self.consecutive_nonfinite = 0
        self.applied_steps += 1

    # -- OptimWrapper API ----------------------------------------------------------------------------------------
    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        self._note_loss(loss)
        super().backward(loss, **kwargs)  # type: ignore[misc]


@OPTIM_WRAPPERS.register_module()
class SafeOptimWrapper(NonFiniteGuardMixin, ShardedGradClipMixin, OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` with the non-finite guard (see module docstring).

    Args:
        max_consecutive: consecutive skipped steps before ``RuntimeError``. Defaults to 5.
        check_grads: check gradients as well as the loss. Defaults to True.
        sharded_grads: the gradients are per-rank shards (FSDP): norm clipping uses the all-reduced global norm.
            Defaults to False (set by ``TransVAEFSDPStrategy``).
        **kwargs: :class:`OptimWrapper` arguments (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """

    #: the registered mixed-precision counterpart ``tools/train.py --amp`` selects (``engine.config_surgery.set_amp``)
    amp_variant = 'SafeAmpOptimWrapper'

    def __init__(self, max_consecutive: int = 5, check_grads: bool = True, sharded_grads: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_guard(max_consecutive, check_grads)
        self.sharded_grads = bool(sharded_grads)

    def step(self, **kwargs) -> None:
        if not self._step_is_finite():
            self._record_skip('loss or gradients')
            return
        bad_lr = self._bad_lr()
        if bad_lr:
            self._record_skip(bad_lr)
            return
        super().step(**kwargs)
        self._record_ok()


def _accelerator_available() -> bool:
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


@OPTIM_WRAPPERS.register_module()
class SafeAmpOptimWrapper(NonFiniteGuardMixin, ShardedGradClipMixin, AmpOptimWrapper):
    """Mixed-precision wrapper with the non-finite guard; also works on CPU (bf16 autocast, no loss scaler).

    On an accelerator this is mmengine's :class:`AmpOptimWrapper` (``GradScaler``; ``dtype`` 'float16' or
    'bfloat16'). fp16 gradient overflows are the scaler's business (it skips the step and lowers the scale); they
    count towards ``max_consecutive`` only once the scale has fallen below ``min_loss_scale``. A non-finite loss
    always counts. Without an accelerator, ``dtype`` must be 'bfloat16' (the default there) and no scaler is used.

    Args:
        loss_scale: 'dynamic', a float or GradScaler kwargs (accelerator only).
        dtype: autocast dtype.
        max_consecutive: consecutive skipped steps before ``RuntimeError``. Defaults to 5.
        check_grads: check gradients as well as the loss.
        min_loss_scale: see above. Defaults to 1.0.
        use_fsdp: use mmengine's ``ShardedGradScaler`` (accelerator only; the FSDP strategy sets it).
        sharded_grads: see :class:`SafeOptimWrapper`.
        **kwargs: :class:`OptimWrapper` arguments.
    """

    def __init__(self, loss_scale: Union[str, float, dict] = 'dynamic', dtype: Union[str, torch.dtype, None] = None,
                 use_fsdp: bool = False, max_consecutive: int = 5, check_grads: bool = True,
                 min_loss_scale: float = 1.0, sharded_grads: bool = False, **kwargs) -> None:
        if _accelerator_available():
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
        else:
            if isinstance(dtype, str):
                dtype = getattr(torch, dtype)
            if dtype is None:
                dtype = torch.bfloat16
            if dtype != torch.bfloat16:
                raise ValueError(f'SafeAmpOptimWrapper on CPU supports only dtype=bfloat16, got {dtype}.')
            OptimWrapper.__init__(self, **kwargs)
            self._scale_update_param = None
            self.loss_scaler = None
            self.cast_dtype = dtype
        self._init_guard(max_consecutive, check_grads)
        self.min_loss_scale = float(min_loss_scale)
        self.sharded_grads = bool(sharded_grads)

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        self._note_loss(loss)
        if self.loss_scaler is None:
            loss.backward(**kwargs)
            self._inner_count += 1
        else:
            AmpOptimWrapper.backward(self, loss, **kwargs)

    def step(self, **kwargs) -> None:
        bad_lr = self._bad_lr()
        if bad_lr:
            self._loss_nonfinite = False
            self.optimizer.zero_grad(set_to_none=True)
            self._record_skip(bad_lr)
            return
        if self.loss_scaler is None:
            if not self._step_is_finite():
                self._record_skip('loss or gradients')
                return
            OptimWrapper.step(self, **kwargs)
            self._record_ok()
            return
        # GradScaler path: unscale once, check, then let the scaler step (it skips on inf) and update.
        self.loss_scaler.unscale_(self.optimizer)
        loss_bad = _any_rank(self._loss_nonfinite)
        self._loss_nonfinite = False
        grads_bad = _any_rank(not self._grads_finite())
        if self.clip_grad_kwargs and not grads_bad:
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)  # skipped by the scaler when grads are inf/nan
        self.loss_scaler.update(self._scale_update_param)
        if loss_bad or (grads_bad and self.loss_scaler.get_scale() < self.min_loss_scale):
            self._record_skip('loss' if loss_bad else f'gradients (loss scale {self.loss_scaler.get_scale():g})')
        elif not grads_bad:
            self._record_ok()

    def state_dict(self) -> dict:
        if self.loss_scaler is None:
            return OptimWrapper.state_dict(self)
        return super().state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        if self.loss_scaler is None:
            state_dict = dict(state_dict)
            state_dict.pop('loss_scaler', None)
            OptimWrapper.load_state_dict(self, state_dict)
            return
        super().load_state_dict(state_dict)
