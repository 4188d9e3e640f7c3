"""A FLOP counter that leaves a step's memory alone: torch's ``FlopCounterMode`` without its module tracking.

``FlopCounterMode`` enters a ``ModuleTracker`` to attribute FLOPs to modules: it hooks every module's forward and
registers backward hooks on the tensors each module takes and returns. Under activation checkpointing, the forwards
that ``torch.utils.checkpoint`` re-runs inside the backward get those hooks too, and they keep the recomputed tensors
alive past their use. Measured on TransVAE-T stage 1 (batch 2, 128², checkpointing on, real fp32 tensors on the CPU):
torch's ``MemTracker`` saw 1177 MiB of step peak with the counter entered and 427 MiB without it, and the allocator's
own record of the same step (profiler memory events) peaked at 428 MiB. So the run planner's trace over-estimated
every checkpointed step, and a real run's FLOP-counted iteration (:class:`~.step_meter.StepMeterHook`) held memory
that the other iterations do not.

Every count here goes to the ``'Global'`` entry, the one the planner and the meter read. A counter still changes what
is allocated, by running the decomposition of each op it has no formula for, so the planner traces memory in a pass
of its own (:func:`~.step_trace.trace_training_step`).
"""
from __future__ import annotations

from typing import Any

from torch.utils.flop_counter import FlopCounterMode

__all__ = ['GlobalFlopCounter']


class _NoModuleTracking:
    """Stands in for ``FlopCounterMode``'s ``ModuleTracker``: no hooks, every FLOP counted under ``'Global'``."""

    parents = frozenset({'Global'})

    def __enter__(self) -> '_NoModuleTracking':
        return self

    def __exit__(self, *args: Any) -> None:
        return None


class GlobalFlopCounter(FlopCounterMode):
    """``FlopCounterMode`` (same arguments) that counts only the total and by op, with no module hooks (see the
    module docstring); ``get_flop_counts()['Global']`` and ``get_total_flops()`` read as with torch's class."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault('display', False)
        super().__init__(**kwargs)
        if not hasattr(self, 'mod_tracker'):  # the attribute this class replaces (torch 2.14): fail loudly if it moves
            raise RuntimeError('torch.utils.flop_counter.FlopCounterMode has no mod_tracker any more: '
                               'GlobalFlopCounter needs updating for this torch version')
        self.mod_tracker = _NoModuleTracking()
