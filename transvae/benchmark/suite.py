"""A benchmark run: parameters, GMACs, latency, peak memory, the training step and the speed switches, of our VAEs
against the SD-VAE reference and the matmul peak (see ``tools/analysis_tools/benchmark.py`` for the protocol).

Latencies of our model and the reference are interleaved repeat by repeat in one process, so machine-load drift hits
both: read the ratios, not the absolute times, on a shared machine.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import platform
import statistics
import time
from typing import Any, Callable

import torch

from .memory import measure_memory, setup_allocator
from .options import BenchmarkOptions
from .targets import SD_VAE_ARCH, CodecTarget, build_ours, build_sdvae, codec_macs, macs_of, train_step_flops
from .component_cost import run_component_costs
from .timing import ctx_call, interleaved, make_train_step, matmul_peak, no_grad_call

__all__ = ['run_benchmark', 'run_switches']


def run_benchmark(opts: BenchmarkOptions, command: str = '') -> dict[str, Any]:
    """Run every measurement ``opts`` asks for and return the results (the JSON document of ``--json``).

    Args:
        opts: what to measure.
        command: the command line recorded in the results.
    """
    from tqdm import tqdm

    from transvae.models.utils.speed import (apply_channels_last, autocast, compile_autoencoder, sdpa_backend,
                                             set_grad_checkpointing)
    from transvae.utils.complexity import count_params

    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    device = opts.device
    allocator = setup_allocator(opts.allocator, device)
    cfg_options = dict(opts.cfg_options or {})
    ckpts = opts.checkpoint or [None] * len(opts.configs)
    results: dict[str, Any] = dict(
        machine=dict(platform=platform.platform(), processor=platform.processor(), cpu_count=os.cpu_count(),
                     torch_threads=torch.get_num_threads(), torch=torch.__version__, device=device,
                     cuda=torch.cuda.get_device_name() if device.startswith('cuda') else None, **allocator),
        command=command,
        switches=dict(amp=opts.amp, channels_last=opts.channels_last, compile=opts.compile,
                      sdpa_backend=opts.sdpa_backend, grad_checkpoint=opts.grad_checkpoint, tile=opts.tile),
        models={}, reference=None, ratios={})
    amp = None if opts.amp == 'fp32' else opts.amp
    tile = opts.tile if opts.tile in (None, 'auto') else int(opts.tile)

    # ---- models
    targets: dict[str, CodecTarget] = {}
    for cfg_path, ck in zip(opts.configs, ckpts):
        name = osp.splitext(osp.basename(cfg_path))[0] + (f'[{opts.preset}]' if opts.preset else '')
        model = build_ours(cfg_path, ck, opts.preset, cfg_options, device)
        if opts.channels_last:
            apply_channels_last(model)
        if opts.compile:
            compile_autoencoder(model, opts.compile)
        targets[name] = CodecTarget('ours', model, model.downsample_factor, model.latent_channels)
        results['models'][name] = dict(config=cfg_path, checkpoint=ck,
                                       params_encoder_M=count_params(model.encoder) / 1e6,
                                       params_decoder_M=count_params(model.decoder) / 1e6, latency={}, memory={},
                                       gmacs={})
    ref = None if opts.no_reference else build_sdvae(device)
    if ref is not None:
        if opts.channels_last:
            apply_channels_last(ref.model)
        results['reference'] = dict(name='SD-VAE (diffusers AutoencoderKL, random weights)', arch=SD_VAE_ARCH,
                                    params_M=count_params(ref.model) / 1e6, latency={}, memory={}, gmacs={})
    all_targets = dict(targets, **({'SD-VAE': ref} if ref is not None else {}))

    def entry(name: str) -> dict:
        return results['reference'] if name == 'SD-VAE' else results['models'][name]

    # ---- GMACs (attention included; model-intrinsic, switches do not change them)
    for name, r in all_targets.items():
        for res in sorted(set(opts.resolutions) | set(opts.mem_resolutions) | set(opts.tiled_mem_resolutions)):
            g = {m: macs_of(r, m, res) / 1e9 for m in ('encode', 'decode')}
            entry(name)['gmacs'][str(res)] = dict(g, total=g['encode'] + g['decode'])

    # ---- matmul peak
    peak_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(opts.amp, torch.float32)
    if not opts.no_peak:  # in the dtype the model runs in (autocast matmuls)
        results['matmul_peak'] = dict(matmul_peak(device, dtype=peak_dtype), dtype=str(peak_dtype))

    # ---- latency (ours and the reference interleaved per repeat)
    n_lat = len(opts.resolutions) * len(opts.batch_sizes) * len(opts.modes) * opts.repeats
    with tqdm(total=n_lat, desc='latency', disable=n_lat == 0) as bar:
        for res in opts.resolutions:
            for b in opts.batch_sizes:
                for mode in opts.modes:
                    fns = {}
                    for name, r in all_targets.items():
                        x = r.inputs(mode, b, res, device, opts.channels_last)
                        if name != 'SD-VAE' and tile is not None and (tile == 'auto' or res > tile):
                            tkw = dict(tile=tile, overlap=opts.overlap, memory_budget_mb=opts.memory_budget_mb,
                                       mode=opts.tile_mode)
                            if mode == 'encode':
                                fns[name] = (lambda r=r, x=x: r.model.tiled_encode(x, **tkw).mean)
                            else:
                                fns[name] = (lambda r=r, x=x: r.model.tiled_decode(x, **tkw))
                        else:
                            mod = r.enc if mode == 'encode' else r.dec
                            fns[name] = (lambda mod=mod, x=x: mod(x))

                    def wrap(fn):
                        def run():
                            with torch.no_grad(), autocast(device, amp), sdpa_backend(opts.sdpa_backend):
                                return fn()
                        return run

                    ts = interleaved({k: wrap(v) for k, v in fns.items()}, opts.repeats, opts.warmup, device, bar)
                    for name, t in ts.items():
                        med = statistics.median(t)
                        entry(name)['latency'].setdefault(str(res), {}).setdefault(str(b), {})[mode] = dict(
                            median_s=med, all_s=t, images_per_s=b / med)
                    if ref is not None:
                        for name in targets:
                            ratios = [a / c for a, c in zip(ts[name], ts['SD-VAE'])]
                            results['ratios'].setdefault(name, {}).setdefault(f'{mode}@{res}/b{b}', {})[
                                'time_ours_over_sdvae_median_of_paired'] = statistics.median(ratios)

    # encode+decode summary ratios vs GMAC ratios
    if ref is not None and {'encode', 'decode'} <= set(opts.modes):
        for name in targets:
            for res in opts.resolutions:
                for b in opts.batch_sizes:
                    lo = entry(name)['latency'][str(res)][str(b)]
                    lr = results['reference']['latency'][str(res)][str(b)]
                    t_o = lo['encode']['median_s'] + lo['decode']['median_s']
                    t_r = lr['encode']['median_s'] + lr['decode']['median_s']
                    g_o = entry(name)['gmacs'][str(res)]['total']
                    g_r = results['reference']['gmacs'][str(res)]['total']
                    speedup, gratio = t_r / t_o, g_r / g_o
                    results['ratios'][name][f'enc+dec@{res}/b{b}'] = dict(
                        time_ours_s=t_o, time_sdvae_s=t_r, speedup_vs_sdvae=speedup, gmacs_ratio_sdvae_over_ours=gratio,
                        speedup_over_gmacs_ratio=speedup / gratio,
                        achieved_gflops_ours=2 * g_o * b / t_o, achieved_gflops_sdvae=2 * g_r * b / t_r)

    # ---- peak memory (fresh subprocess per measurement)
    if not opts.no_memory:
        specs = []
        for res in opts.mem_resolutions:
            for b in opts.batch_sizes:
                for mode in opts.mem_modes:
                    for name in all_targets:
                        specs.append((name, res, b, mode, None))
        for res in opts.tiled_mem_resolutions:
            for name in targets:
                specs.append((name, res, 1, 'decode', tile if tile is not None else 'auto'))
        for name, res, b, mode, t in tqdm(specs, desc='memory', disable=not specs):
            spec = dict(kind='sdvae' if name == 'SD-VAE' else 'ours', mode=mode, batch=b, res=res, device=device,
                        amp=amp, channels_last=opts.channels_last, sdpa_backend=opts.sdpa_backend,
                        threads=torch.get_num_threads(), tile=t, overlap=opts.overlap, allocator=opts.allocator,
                        memory_budget_mb=opts.memory_budget_mb, preset=opts.preset, cfg_options=cfg_options,
                        tile_limit=opts.tile_limit if t is not None else None, tile_mode=opts.tile_mode)
            if name != 'SD-VAE':
                spec.update(config=results['models'][name]['config'], checkpoint=results['models'][name]['checkpoint'])
            key = f'{mode}@{res}/b{b}' + (f'/tile{t}' if t is not None else '')
            entry(name)['memory'][key] = measure_memory(spec)
        if ref is not None:
            for name in targets:
                for key, m in results['models'][name]['memory'].items():
                    rm = results['reference']['memory'].get(key)
                    if rm and 'peak_delta_mb' in rm and 'peak_delta_mb' in m:
                        results['ratios'].setdefault(name, {}).setdefault(key, {})['peak_mem_ours_over_sdvae'] = (
                            m['peak_delta_mb'] / rm['peak_delta_mb'])

    # ---- training step (micro model, and a plain conv VAE of its size in the same interleaved loop)
    if opts.train_step:
        train_cfgs = {'model': opts.train_config}
        if opts.train_reference:
            train_cfgs['reference'] = opts.train_reference
        steps, macs = {}, {}
        for role, cfg_path in train_cfgs.items():
            tm = build_ours(cfg_path, None, None, {}, device)
            tr = CodecTarget('ours', tm, tm.downsample_factor, tm.latent_channels)
            macs[role] = codec_macs(tr, opts.train_res, opts.train_batch)
            if opts.channels_last:
                apply_channels_last(tm)
            set_grad_checkpointing(tm, opts.grad_checkpoint)
            steps[role] = make_train_step(tm, opts.train_batch, opts.train_res, device, amp, opts.channels_last)[0]
        if not opts.no_peak:  # re-measure the peak right before: load drifts on a shared machine
            results['matmul_peak_before_train'] = dict(matmul_peak(device, dtype=peak_dtype), dtype=str(peak_dtype))
        with sdpa_backend(opts.sdpa_backend):
            ts = interleaved(steps, opts.train_repeats, 2, device)
        peak = max(results.get('matmul_peak', {}).get('gflops', 0),
                   results.get('matmul_peak_before_train', {}).get('gflops', 0)) * 1e9
        for role, cfg_path in train_cfgs.items():
            med = statistics.median(ts[role])
            achieved = train_step_flops(macs[role]) / med
            results['train_step' if role == 'model' else 'train_step_reference'] = dict(
                config=cfg_path, batch=opts.train_batch, res=opts.train_res, forward_gmacs=macs[role] / 1e9,
                median_s=med, all_s=ts[role], images_per_s=opts.train_batch / med, achieved_gflops=achieved / 1e9,
                fraction_of_matmul_peak=achieved / peak if peak else None)

    # ---- switches, one at a time vs the plain run (same process, interleaved)
    if opts.switches and targets:
        results['switch_ratios'] = run_switches(opts, next(iter(results['models'].values()))['config'], device,
                                                cfg_options)

    # ---- what each removable component costs (an upper bound on what a faster kernel of it gains)
    if opts.component_costs and targets:
        results['component_costs'] = run_component_costs(
            opts, next(iter(results['models'].values()))['config'], opts.component_costs, device, cfg_options)

    return results


def run_switches(opts: BenchmarkOptions, config: str, device: str, cfg_options: dict) -> dict:
    """Time ratio (switch / plain, median of paired repeats) of encode+decode at the first resolution and of the
    micro train step; grad checkpointing is reported as a peak-memory ratio (fresh subprocesses) and time ratio."""
    from tqdm import tqdm

    from transvae.models.utils.speed import (apply_channels_last, autocast, compile_autoencoder, sdpa_backend,
                                             set_grad_checkpointing)
    res = opts.resolutions[0] if opts.resolutions else 256
    out: dict[str, Any] = {'resolution': res}
    base = build_ours(config, None, opts.preset, cfg_options, device)

    def ed(model, cl=False):
        x = torch.rand(1, 3, res, res, device=device) * 2 - 1
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)

        def run():
            return model.decoder(model.encoder(x)[:, :model.latent_channels])
        return run

    variants: dict[str, Callable[[], Any]] = {}
    for sw in opts.switch_list:
        m = copy.deepcopy(base)
        if sw == 'channels_last':
            apply_channels_last(m)
            variants[sw] = ed(m, True)
        elif sw == 'bf16':
            fn = ed(m)
            variants[sw] = (lambda fn=fn: ctx_call(fn, autocast(device, 'bf16')))
        elif sw == 'sdpa_math':
            fn = ed(m)
            variants[sw] = (lambda fn=fn: ctx_call(fn, sdpa_backend('math')))
        elif sw == 'compile':
            compile_autoencoder(m)
            variants[sw] = ed(m)
    plain = ed(base)
    fns = {'plain': plain, **variants}

    t0 = time.perf_counter()
    with tqdm(total=opts.repeats, desc='switches enc+dec') as bar:
        ts = interleaved({k: no_grad_call(v) for k, v in fns.items()}, opts.repeats, 1, device, bar)
    out['compile_warmup_included_s'] = time.perf_counter() - t0
    out['enc+dec'] = {k: dict(median_s=statistics.median(v),
                              ratio_vs_plain=statistics.median([a / b for a, b in zip(v, ts['plain'])]))
                      for k, v in ts.items()}
    if opts.train_step:
        tm = build_ours(opts.train_config, None, None, {}, device)
        steps = {}
        for sw in ['plain'] + [s for s in opts.switch_list if s != 'sdpa_math'] + ['grad_checkpoint']:
            m = copy.deepcopy(tm)
            cl = sw == 'channels_last'
            if cl:
                apply_channels_last(m)
            if sw == 'compile':
                compile_autoencoder(m)
            set_grad_checkpointing(m, sw == 'grad_checkpoint')
            steps[sw] = make_train_step(m, opts.train_batch, opts.train_res, device,
                                        'bf16' if sw == 'bf16' else None, cl)[0]
        ts = interleaved(steps, opts.train_repeats, 2, device)
        out['train_step'] = {k: dict(median_s=statistics.median(v),
                                     ratio_vs_plain=statistics.median([a / b for a, b in zip(v, ts['plain'])]))
                             for k, v in ts.items()}
        if not opts.no_memory:
            mem = {}
            for gc in (False, True):
                spec = dict(kind='ours', config=opts.train_config, mode='train', batch=opts.train_batch,
                            res=opts.train_res, device=device, grad_checkpoint=gc, threads=torch.get_num_threads(),
                            allocator=opts.allocator)
                mem['grad_checkpoint' if gc else 'plain'] = measure_memory(spec)
            out['train_step_memory'] = mem
            if all('peak_delta_mb' in v for v in mem.values()):
                out['train_step_memory']['ratio_grad_checkpoint_vs_plain'] = (
                    mem['grad_checkpoint']['peak_delta_mb'] / mem['plain']['peak_delta_mb'])
    return out


