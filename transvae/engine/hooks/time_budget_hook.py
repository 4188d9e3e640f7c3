"""Stop training on elapsed wall time, with a linear learning-rate decay over the last part of the budget."""
from __future__ import annotations

import math
import time
from typing import Optional

import torch
from mmengine.dist import broadcast, is_distributed
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.runner import IterBasedTrainLoop

from transvae.registry import HOOKS

ELAPSED_KEY = 'time_budget_elapsed'


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """End an iteration-based training run once ``seconds`` of wall time have been spent on it.

    Meant for ``IterBasedTrainLoop`` (an epoch-based loop is stopped at the end of the current epoch). The stop is
    clean: the loop's ``max_iters`` is set to the current iteration + 1, so the loop exits as after a
    normal end (``CheckpointHook(save_last=True)`` saves, the final validation runs, ``after_train`` hooks run).
    During the last ``decay_fraction`` of the budget every param group's lr is scaled linearly from 1 down to
    ``min_lr_ratio`` times its scheduled value (the schedulers keep stepping the undecayed value; the scale is applied
    for the optimizer step only). Elapsed time is kept in the message hub (runtime info ``time_budget_elapsed``,
    checkpointed), so it survives ``--resume``; the time between the last checkpoint and a crash is not counted.
    The remaining time is logged as ``budget_left_s``. Under DDP rank 0's clock decides for all ranks.

    True ETA: mmengine's ``IterTimerHook`` counts the ETA toward the loop's ``max_iters``, an upper bound under a
    budget ("eta: 1 day" in a 10-minute run). While the budget lasts, the hook sets the loop's end to the iteration
    the budget is predicted to reach (the mean time per iteration of this run, validation included, never past the
    configured ``max_iters`` and never before the next iteration), so the log's ``[iter/max]`` and ``eta`` are
    predictions of the real end; the stop itself is decided by the clock alone. Training ends at the budget or at
    the configured ``max_iters``, whichever comes first.

    ``seconds=None`` disables the hook (a fixed-iteration run): configs can list it and a command line can switch
    it on with ``--cfg-options custom_hooks.0.seconds=600``.

    Args:
        seconds: the training-time budget (validation inside the loop counts); ``None``: no budget.
        decay_fraction: fraction of the budget at the end over which the lr decays; 0 disables the decay.
        min_lr_ratio: lr multiplier reached at the end of the budget.
    """

    priority = 5  # before RuntimeInfoHook (logs the decayed lr), ParamSchedulerHook and CheckpointHook

    def __init__(self, seconds: Optional[float], decay_fraction: float = 0.2, min_lr_ratio: float = 0.0) -> None:
        if seconds is not None and seconds <= 0:
            raise ValueError(f'seconds must be > 0, got {seconds}')
        if not 0.0 <= decay_fraction <= 1.0:
            raise ValueError(f'decay_fraction must be in [0, 1], got {decay_fraction}')
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f'min_lr_ratio must be in [0, 1], got {min_lr_ratio}')
        self.enabled = seconds is not None
        self.seconds = float(seconds) if seconds is not None else math.inf
        self.decay_fraction = float(decay_fraction)
        self.min_lr_ratio = float(min_lr_ratio)
        self._t0: Optional[float] = None
        self._base_elapsed = 0.0
        self._elapsed = 0.0
        self._saved_lrs: Optional[list[tuple[dict, float]]] = None
        self._configured_max: Optional[int] = None
        self._start_iter = 0

    # -- helpers -----------------------------------------------------------------------------------------------------
    def _now_elapsed(self) -> float:
        assert self._t0 is not None
        elapsed = torch.tensor([self._base_elapsed + time.time() - self._t0], dtype=torch.float64)
        if is_distributed():
            broadcast(elapsed, src=0)
        return float(elapsed.item())

    def lr_scale(self, elapsed: float) -> float:
        """The lr multiplier after ``elapsed`` seconds (1 before the decay window)."""
        if not self.enabled or self.decay_fraction <= 0:
            return 1.0
        start = self.seconds * (1.0 - self.decay_fraction)
        progress = min(max((elapsed - start) / (self.seconds * self.decay_fraction), 0.0), 1.0)
        return 1.0 - (1.0 - self.min_lr_ratio) * progress

    @staticmethod
    def _param_groups(runner) -> list[dict]:
        wrapper = runner.optim_wrapper
        wrappers = list(wrapper.values()) if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        return [g for w in wrappers for g in w.optimizer.param_groups]

    def predicted_end(self, cur_iter: int, remaining: float, sec_per_iter: float, max_iters: int) -> int:
        """The iteration count at which ``remaining`` seconds run out, at ``sec_per_iter``; within
        ``[cur_iter + 2, max_iters]`` (``cur_iter + 1`` iterations are done; the next one always runs)."""
        if sec_per_iter <= 0 or not math.isfinite(remaining):
            return max_iters
        end = cur_iter + 1 + math.ceil(remaining / sec_per_iter)
        return int(min(max(end, cur_iter + 2), max_iters))

    def _stop(self, runner, at_iters: int, reason: str) -> None:
        loop = runner.train_loop
        if not isinstance(loop, IterBasedTrainLoop):  # epoch loops can only stop at the end of the epoch
            if not loop.stop_training:
                loop.stop_training = True
                runner.logger.info(f'TimeBudgetHook: {reason}; training ends after the current epoch.')
            return
        if at_iters < loop.max_iters:
            loop._max_iters = at_iters
            runner.logger.info(f'TimeBudgetHook: {reason}; training ends after iteration {at_iters} '
                               f'(the last checkpoint and validation run as usual).')

    # -- hook points -------------------------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        if not self.enabled:
            runner.logger.info('TimeBudgetHook: no time budget (seconds=None); the run ends at max_iters.')
            return
        loop = runner.train_loop
        self._configured_max = int(loop.max_iters) if isinstance(loop, IterBasedTrainLoop) else None
        self._start_iter = int(runner.iter)
        self._base_elapsed = float(runner.message_hub.get_info(ELAPSED_KEY, 0.0) or 0.0)
        self._t0 = time.time()
        self._elapsed = self._now_elapsed()
        runner.logger.info(f'TimeBudgetHook: budget {self.seconds:.0f} s, {self._elapsed:.0f} s already spent, '
                           f'lr decays over the last {self.decay_fraction:.0%} to x{self.min_lr_ratio:g}.')
        if self._elapsed >= self.seconds:
            self._stop(runner, runner.iter, f'budget of {self.seconds:.0f} s already spent')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.enabled:
            return
        scale = self.lr_scale(self._elapsed)
        self._saved_lrs = None
        if scale < 1.0:
            groups = self._param_groups(runner)
            self._saved_lrs = [(g, g['lr']) for g in groups]
            for g in groups:
                g['lr'] = g['lr'] * scale

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.enabled:
            return
        if self._saved_lrs is not None:  # give the schedulers back the undecayed values
            for g, lr in self._saved_lrs:
                g['lr'] = lr
            self._saved_lrs = None
        self._elapsed = self._now_elapsed()
        runner.message_hub.update_info(ELAPSED_KEY, self._elapsed)
        remaining = max(self.seconds - self._elapsed, 0.0)
        runner.message_hub.update_scalar('train/budget_left_s', remaining)
        if remaining <= 0:
            self._stop(runner, runner.iter + 1, f'time budget of {self.seconds:.0f} s reached '
                       f'({self._elapsed:.1f} s elapsed)')
        elif self._configured_max is not None:  # a true ETA: end the loop where the budget is predicted to run out
            done = runner.iter + 1 - self._start_iter
            spent = self._elapsed - self._base_elapsed
            runner.train_loop._max_iters = self.predicted_end(runner.iter, remaining, spent / max(done, 1),
                                                              self._configured_max)

    def after_train(self, runner) -> None:
        if self.enabled and self._t0 is not None:
            runner.logger.info(f'TimeBudgetHook: {self._elapsed:.1f} s of {self.seconds:.0f} s used.')
