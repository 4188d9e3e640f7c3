"""The planner's check on the CPU: the peak memory of a real training step against the traced prediction.

:func:`measure_step_peak` builds the same model, optimizer wrapper(s) and batch as the planner
(:func:`~transvae.benchmark.step_trace.build_training_setup`, real fp32 tensors) in a fresh interpreter
(``python -m transvae.benchmark.step_memory SPEC``) and runs ``train_step`` twice. The first step creates the
optimizer state and warms every lazy initialisation (thread pools, kernel caches); the heap's free pages are then
returned to the kernel (``malloc_trim``) and the figure is the increase of the process peak RSS (``VmHWM`` reset
through ``/proc/self/clear_refs``, as :mod:`transvae.benchmark.memory` does) over the RSS before the second step,
with glibc's mmap threshold fixed at 128 KiB (``setup_allocator('live')``: every tensor above it goes back to the
kernel when freed, so the RSS follows the live tensors, what the trace predicts; glibc's default dynamic threshold
kept freed blocks in the heap and read 660-743 MiB for a checkpointed step whose live peak was 428 MiB).
:func:`compare_cpu_step` traces the same step on fake tensors (the optimizer on its CPU default path) and compares
the predicted increase of the step (its peak minus the memory held before it: parameters, buffers, frozen networks,
optimizer state) with the measured one.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Optional

from .memory import run_json_worker

__all__ = ['measure_step_peak', 'predict_step_peak', 'compare_cpu_step', 'run_step_worker']


def _spec(config: str, batch: int, resolution: Optional[int], preset: Optional[str], cfg_options: Optional[dict],
          activation_checkpointing: bool) -> dict:
    return dict(config=config, batch=batch, resolution=resolution, preset=preset, cfg_options=cfg_options or {},
                activation_checkpointing=activation_checkpointing)


def _setup(spec: dict, fake: bool) -> Any:
    from .run_plan import _train_resolution, load_plan_config
    from .step_trace import build_training_setup
    cfg, _ = load_plan_config(spec['config'], None, spec.get('preset'), spec.get('cfg_options'),
                              spec.get('resolution'))
    res = spec.get('resolution') or _train_resolution(cfg)
    return build_training_setup(cfg, spec['batch'], res, fake=fake, foreach=None,
                                activation_checkpointing=spec.get('activation_checkpointing', False))


def _release_free_heap() -> None:
    """Return the heap's free pages to the kernel (glibc ``malloc_trim``), so the first step's freed activations
    do not sit in the RSS the second step's peak is measured against."""
    import ctypes
    import ctypes.util
    try:
        ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_step_worker(spec: dict) -> dict:
    """Build the setup for real and measure the peak RSS increase of two training steps (in this process)."""
    import torch

    from .memory import _reset_hwm, _status_kb, setup_allocator
    from .step_trace import _at_iteration
    torch.set_num_threads(int(spec.get('threads') or 1))
    setup_allocator(spec.get('allocator', 'live'), 'cpu')
    torch.manual_seed(0)
    setup = _setup(spec, fake=False)
    with _at_iteration(setup.iteration):
        setup.model.train_step(setup.data, setup.optim_wrapper)  # creates the optimizer state, warms lazy inits
        _release_free_heap()
        base = _status_kb('VmRSS') * 1024
        reset = _reset_hwm()
        setup.model.train_step(setup.data, setup.optim_wrapper)
    hwm = _status_kb('VmHWM') * 1024
    return dict(measured_bytes=hwm - base, base_rss_bytes=base, hwm_reset=reset, batch=setup.batch,
                input_shape=list(setup.input_shape))


def measure_step_peak(config: str, batch: int, resolution: Optional[int] = None, preset: Optional[str] = None,
                      cfg_options: Optional[dict] = None, activation_checkpointing: bool = False,
                      timeout: Optional[float] = None) -> dict:
    """:func:`run_step_worker` in a fresh interpreter; its result, or ``{'error': ...}``."""
    spec = _spec(config, batch, resolution, preset, cfg_options, activation_checkpointing)
    return run_json_worker('transvae.benchmark.step_memory', spec, timeout)


def predict_step_peak(config: str, batch: int, resolution: Optional[int] = None, preset: Optional[str] = None,
                      cfg_options: Optional[dict] = None, activation_checkpointing: bool = False) -> dict:
    """The traced step on fake tensors (CPU optimizer path): peak bytes over those held before the step."""
    from .step_trace import trace_training_step
    setup = _setup(_spec(config, batch, resolution, preset, cfg_options, activation_checkpointing), fake=True)
    trace = trace_training_step(setup)
    held = trace.held_before
    return dict(predicted_bytes=int(trace.totals().max()) - held, held_before_bytes=held,
                flops=trace.flops, batch=setup.batch, input_shape=list(setup.input_shape))


def compare_cpu_step(config: str, batch: int, resolution: Optional[int] = None, preset: Optional[str] = None,
                     cfg_options: Optional[dict] = None, activation_checkpointing: bool = False) -> dict:
    """Predicted and measured peak of one real fp32 CPU step (``ratio`` = predicted / measured)."""
    pred = predict_step_peak(config, batch, resolution, preset, cfg_options, activation_checkpointing)
    meas = measure_step_peak(config, batch, resolution, preset, cfg_options, activation_checkpointing)
    if 'error' in meas:
        raise RuntimeError(f'the CPU measurement failed: {meas["error"]}')
    return dict(pred, **meas, predicted_mib=pred['predicted_bytes'] / 2 ** 20,
                measured_mib=meas['measured_bytes'] / 2 ** 20, ratio=pred['predicted_bytes'] / meas['measured_bytes'])


if __name__ == '__main__':
    print(json.dumps(run_step_worker(json.loads(sys.argv[1]))))
