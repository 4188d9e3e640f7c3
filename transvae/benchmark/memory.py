"""Peak memory of one encode / decode / training step, each measured in a fresh process so peaks never mix.

On CPU the figure is the increase of the process peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) over
the RSS before the call; on CUDA ``torch.cuda.max_memory_allocated`` over the allocated memory before it.
:func:`measure_memory` runs ``python -m transvae.benchmark.memory_worker SPEC`` (:func:`run_worker`) and reads
its JSON line.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from typing import Any, Callable, Optional

import torch

from .targets import CodecTarget, build_ours, build_sdvae
from .timing import make_train_step

__all__ = ['setup_allocator', 'run_worker', 'measure_memory']


def _status_kb(field: str) -> int:
    with open('/proc/self/status') as fh:
        for line in fh:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def _reset_hwm() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as fh:
            fh.write('5')  # reset VmHWM (peak RSS) to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def setup_allocator(kind: str, device: str) -> dict:
    """glibc malloc for CPU runs: ``'tuned'`` (large blocks kept in the heap: speed), ``'live'`` (every block above
    128 KiB its own ``mmap``: the RSS follows the live tensors) or ``'glibc'`` (its defaults); what is in effect, for
    the report (:mod:`transvae.utils.allocator`)."""
    from transvae.utils.allocator import allocator_state, rss_follows_live_tensors, tune_cpu_allocator
    if not device.startswith('cuda'):
        if kind == 'tuned':
            tune_cpu_allocator()
        elif kind == 'live':
            rss_follows_live_tensors()
        elif kind != 'glibc':
            raise ValueError(f"allocator must be 'tuned', 'live' or 'glibc', got '{kind}'")
    return allocator_state()


def run_worker(spec: dict) -> dict:
    """Build the model named in ``spec``, run one call and report the peak memory increase."""
    from transvae.models.utils.speed import apply_channels_last, autocast, sdpa_backend, set_grad_checkpointing
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = spec['device']
    setup_allocator(spec.get('allocator', 'tuned'), device)
    torch.manual_seed(0)
    if spec['kind'] == 'sdvae':
        target = build_sdvae(device)
    else:
        model = build_ours(spec['config'], spec.get('checkpoint'), spec.get('preset'), spec.get('cfg_options', {}),
                           device)
        target = CodecTarget('ours', model, model.downsample_factor, model.latent_channels)
    if spec.get('channels_last'):
        apply_channels_last(target.model)
    mode, b, res = spec['mode'], spec['batch'], spec['res']
    if mode == 'train':
        set_grad_checkpointing(target.model, bool(spec.get('grad_checkpoint')))
        step, _ = make_train_step(target.model, b, res, device, spec.get('amp'))
        fn = step
    else:
        x = target.inputs(mode, b, res, device, spec.get('channels_last', False))
        tile = spec.get('tile')
        if tile is not None:
            tkw = dict(tile=tile, overlap=spec.get('overlap'), memory_budget_mb=spec.get('memory_budget_mb'),
                       mode=spec.get('tile_mode', 'blend'))
            if mode == 'encode':
                def fn():
                    return target.model.tiled_encode(x, **tkw).mean
            else:
                def fn():
                    return target.model.tiled_decode(x, **tkw)
            if spec.get('tile_limit'):
                fn = _limit_tiles(target, mode, fn, spec['tile_limit'])
            chosen = None
            if tile == 'auto':  # calibrate before the baseline so its tiny peaks do not count
                from transvae.models.autoencoders.tiling import TilingConfig, choose_tile
                shape = (b, 3, res, res)
                chosen = choose_tile(target.model, mode, shape, TilingConfig(**tkw))
                spec['auto_tile'] = chosen
                spec['estimated_tile_peak_mb'] = target.model.estimate_peak_memory(
                    shape, mode, tile=chosen, mode=tkw['mode']) / 2**20
        else:
            mod = target.enc if mode == 'encode' else target.dec

            def fn():
                return mod(x)
    cuda = device.startswith('cuda')
    ctx_grad = contextlib.nullcontext() if mode == 'train' else torch.no_grad()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = _status_kb('VmRSS') * 1024
    hwm_reset = _reset_hwm()
    t = time.perf_counter()
    with ctx_grad, autocast(device, spec.get('amp')), sdpa_backend(spec.get('sdpa_backend')):
        out = fn()
        if mode == 'train':
            out = fn()  # second step: optimizer state exists
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    del out
    res_d = dict(wall_s=wall, base_rss_mb=base_rss / 2**20, hwm_reset=hwm_reset)
    for k in ('auto_tile', 'estimated_tile_peak_mb'):
        if k in spec:
            res_d[k] = spec[k]
    if hasattr(fn, 'tiles_run'):
        res_d['tiles_run'] = fn.tiles_run
    hwm = _status_kb('VmHWM') * 1024
    res_d['peak_rss_mb'] = hwm / 2**20
    res_d['peak_delta_mb'] = (hwm - base_rss) / 2**20
    if cuda:
        res_d['cuda_peak_delta_mb'] = (torch.cuda.max_memory_allocated() - base) / 2**20
        res_d['peak_delta_mb'] = res_d['cuda_peak_delta_mb']
    return res_d


class _TileLimit(Exception):
    pass


def _limit_tiles(target: CodecTarget, mode: str, fn: Callable[[], Any], limit: int) -> Callable[[], Any]:
    """Wrap ``fn`` so the tiled call stops (cleanly) after ``limit`` encoder / decoder calls."""
    net = target.model.encoder if mode == 'encode' else target.model.decoder
    state = dict(calls=0)

    def hook(module, inputs):
        state['calls'] += 1
        if state['calls'] > limit:
            raise _TileLimit

    def run():
        h = net.register_forward_pre_hook(hook)
        try:
            return fn()
        except _TileLimit:
            return None
        finally:
            h.remove()
            run.tiles_run = min(state['calls'], limit)
    return run


def run_json_worker(module: str, spec: dict, timeout: Optional[float] = None) -> dict:
    """Run ``python -m module JSON(spec)`` in a fresh interpreter (a clean allocator and peak counter); the last JSON
    line it prints, or ``{'error': ...}`` (its stderr tail, or ``'timeout'``)."""
    cmd = [sys.executable, '-m', module, json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error='timeout')
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith('{'):
            return json.loads(line)
    return dict(error=(proc.stderr or proc.stdout)[-2000:])


def measure_memory(spec: dict, timeout: Optional[float] = None) -> dict:
    """Run :func:`run_worker` on ``spec`` in a fresh interpreter; its result, or ``{'error': ...}``."""
    return run_json_worker('transvae.benchmark.memory_worker', spec, timeout)
