"""A hook that measures a real training run from inside the Runner: step time, FLOPs per step, peak memory, losses.

``tools/analysis_tools/gpu_check.py`` adds it to the configs it trains (``custom_imports`` of this module +
``custom_hooks=[dict(type='StepMeterHook', out_file=...)]``), so the measured run is the ordinary ``tools/train.py``
/ ``tools/dist_train.sh`` run of the config: the same Runner, model wrapper or FSDP strategy, optimizer wrapper and
hooks. What it records, per iteration of the run:

* ``step_s``: the device-synchronised time from ``before_train_iter`` to ``after_train_iter`` of this hook (priority
  ``VERY_HIGH``: first in both), i.e. ``model.train_step`` (data preprocessing, forward, backward, optimizer steps)
  without the data loading before it and the other hooks' ``after_train_iter`` work (EMA, checkpoint, logging);
* ``iter_s``: the time between consecutive ``before_train_iter`` calls, i.e. the whole iteration (data wait and every
  hook included);
* the log variables the step returned (the losses);
* on CUDA the peak of ``torch.cuda.max_memory_allocated`` read after each step (mmengine's ``LogProcessor`` resets the
  peak at every log line, so the whole-run peak is the maximum of these reads); on CPU the process peak RSS
  (``VmHWM``) and the RSS before the first step.

One iteration (``flop_iter``, by default the last) runs under torch's FLOP counter (without its module hooks, which
would keep checkpointed recomputations alive: :class:`~.global_flops.GlobalFlopCounter`): its FLOPs
(forward, backward and optimizer, every op torch's counter knows; on CPU the flash SDPA kernel is added through
``custom_mapping``) are the run's ``flops_per_step``, and its time is left out of ``step_s`` statistics (the counter
slows it down). Rank 0 writes the JSON (atomically) after every iteration, so a run cut short by a timeout still
leaves what it measured.
"""
from __future__ import annotations

import json
import statistics
import time
from typing import Any, Optional

import torch
from mmengine.hooks import Hook

from transvae.benchmark.global_flops import GlobalFlopCounter
from transvae.engine.atomic_io import atomic_write_text
from transvae.registry import HOOKS
from transvae.utils.memory import peak_rss_bytes, reset_peak_rss, rss_bytes

__all__ = ['StepMeterHook', 'cpu_sdpa_flop_formulas', 'summarise_steps']


def cpu_sdpa_flop_formulas() -> dict:
    """``FlopCounterMode(custom_mapping=...)`` entries for the CPU flash SDPA kernel, which torch's counter does not
    know (it counts ``_scaled_dot_product_flash_attention`` / ``_efficient_attention`` / ``_cudnn_attention``, the CUDA
    kernels): the same formulas as those (``QK^T`` + ``AV`` forward, four matmuls backward)."""
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count
    aten = torch.ops.aten
    out = {}
    fwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    bwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward', None)
    if fwd is not None:
        def fwd_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return sdpa_flop_count(query_shape, key_shape, value_shape)
        out[fwd] = fwd_flops
    if bwd is not None:
        def bwd_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)
        out[bwd] = bwd_flops
    return out


def summarise_steps(step_s: list[float], flop_iter: Optional[int], warmup: int) -> dict[str, Any]:
    """Median / min / max of the step times after ``warmup`` iterations, the FLOP-counted one left out.

    Args:
        step_s: seconds of each iteration's train step, in order.
        flop_iter: index of the counted iteration (left out), or ``None``.
        warmup: iterations left out at the start (lazy initialisation, cuDNN / allocator warm-up); fewer when the
            run is too short to leave one timed iteration.
    """
    idx = [i for i in range(len(step_s)) if i != flop_iter]
    skip = min(warmup, max(len(idx) - 1, 0))
    timed = [step_s[i] for i in idx[skip:]]
    if not timed:
        return dict(timed_iters=0)
    return dict(timed_iters=len(timed), warmup_iters=skip, median_s=statistics.median(timed), min_s=min(timed),
                max_s=max(timed))


@HOOKS.register_module()
class StepMeterHook(Hook):
    """Measure every training iteration of the run and write the figures to ``out_file`` (see the module docstring).

    Args:
        out_file: JSON file written by rank 0 (replaced atomically after every iteration).
        flop_iter: 0-based iteration of this run whose FLOPs are counted; negative counts from the end
            (``-1``: the last iteration, so the count cannot disturb the timed ones).
        warmup: iterations left out of the step-time statistics at the start.
    """

    priority = 'VERY_HIGH'

    def __init__(self, out_file: str, flop_iter: int = -1, warmup: int = 2) -> None:
        self.out_file = out_file
        self.flop_iter = flop_iter
        self.warmup = warmup
        self._counter: Any = None
        self._t_step: Optional[float] = None
        self._t_prev_iter: Optional[float] = None
        self._record: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def _rank0(self) -> bool:
        from mmengine.dist import is_main_process
        return is_main_process()

    def _counted_iter(self, runner) -> int:
        start = self._record['start_iter']
        n = runner.max_iters - start
        return self.flop_iter if self.flop_iter >= 0 else n + self.flop_iter

    def _write(self) -> None:
        if self._rank0():
            r = self._record
            r['summary'] = summarise_steps(r['step_s'], r.get('flop_iter'), self.warmup)
            atomic_write_text(self.out_file, json.dumps(r, indent=1))

    # ------------------------------------------------------------------ hook points
    def before_train(self, runner) -> None:
        from mmengine.dist import get_world_size
        model = runner.model
        params = list(model.parameters())
        cuda = torch.cuda.is_available()
        self._record = dict(
            config=getattr(runner.cfg, 'filename', None), world_size=get_world_size(), start_iter=runner.iter,
            max_iters=runner.max_iters, batch_size=getattr(runner.train_dataloader, 'batch_size', None),
            params=sum(p.numel() for p in params), trainable_params=sum(p.numel() for p in params if p.requires_grad),
            optim_wrapper=_wrapper_types(runner.cfg.get('optim_wrapper', {})),
            amp_dtype=_amp_dtype(runner.cfg.get('optim_wrapper', {})), device='cuda' if cuda else 'cpu',
            device_name=torch.cuda.get_device_name() if cuda else None, torch=torch.__version__,
            step_s=[], iter_s=[], losses=[], flops_per_step=None, flop_iter=None, flops_by_op=None,
            memory=dict(kind='cuda max_memory_allocated' if cuda else 'process peak RSS (VmHWM)'))
        self._record['flop_iter'] = self._counted_iter(runner)
        if cuda:
            self._sync()
            self._record['memory'].update(allocated_before_train_bytes=torch.cuda.memory_allocated(),
                                          peak_allocated_bytes=torch.cuda.max_memory_allocated())
        else:
            self._record['memory'].update(rss_before_train_bytes=rss_bytes(), peak_rss_reset=reset_peak_rss())

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        self._sync()
        now = time.perf_counter()
        if self._t_prev_iter is not None:
            self._record['iter_s'].append(now - self._t_prev_iter)
        self._t_prev_iter = now
        if runner.iter - self._record['start_iter'] == self._record['flop_iter']:
            mapping = {} if torch.cuda.is_available() else cpu_sdpa_flop_formulas()
            self._counter = GlobalFlopCounter(custom_mapping=mapping)
            self._counter.__enter__()
        self._t_step = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._sync()
        self._record['step_s'].append(time.perf_counter() - (self._t_step or time.perf_counter()))
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self._record['flops_per_step'] = int(self._counter.get_total_flops())
            by_op = self._counter.get_flop_counts().get('Global', {})
            self._record['flops_by_op'] = {str(k): int(v) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}
            self._counter = None
        self._record['losses'].append({k: _scalar(v) for k, v in (outputs or {}).items()})
        mem = self._record['memory']
        if torch.cuda.is_available():  # before LoggerHook's reset_peak_memory_stats (this hook runs first)
            mem['peak_allocated_bytes'] = max(mem.get('peak_allocated_bytes', 0), torch.cuda.max_memory_allocated())
            mem['peak_reserved_bytes'] = max(mem.get('peak_reserved_bytes', 0), torch.cuda.max_memory_reserved())
        else:
            mem['peak_rss_bytes'] = peak_rss_bytes()
        self._record['iters_done'] = len(self._record['step_s'])
        self._write()

    def after_train(self, runner) -> None:
        if self._counter is not None:  # the run ended before the counted iteration finished
            self._counter.__exit__(None, None, None)
            self._counter = None
        self._record['finished'] = True
        self._write()


def _scalar(v: Any) -> Any:
    if torch.is_tensor(v):
        return float(v.detach().float().mean())
    if isinstance(v, (int, float)):
        return float(v)
    return str(v)


def _wrapper_types(ow: Any) -> list[str]:
    if not isinstance(ow, dict):
        return []
    if 'type' in ow or 'optimizer' in ow:
        return [str(ow.get('type', 'OptimWrapper'))]
    return [str(v.get('type', 'OptimWrapper')) for v in ow.values() if isinstance(v, dict)]


def _amp_dtype(ow: Any) -> Optional[str]:
    if not isinstance(ow, dict):
        return None
    wrappers = [ow] if 'type' in ow or 'optimizer' in ow else [v for v in ow.values() if isinstance(v, dict)]
    dtypes = {str(w.get('dtype')) for w in wrappers if 'Amp' in str(w.get('type', ''))}
    return ','.join(sorted(dtypes)) or None
