"""Speed / memory / complexity benchmark of VAE configs against the SD-VAE reference and the matmul peak.

Example (the CPU run reported in the benchmark notes)::

    python tools/analysis_tools/benchmark.py configs/_base_/models/transvae-t_f16d32.py \
        --resolutions 256 --mem-resolutions 256 1024 --tiled-mem-resolutions 2048 --tile 256 \
        --train-step --switches --json work_dirs/benchmark/cpu.json

Reported per config: parameters, GMACs (attention counted; exact extrapolation ``a·P + b·P²`` from two small
traces), encode / decode latency (median of ``--repeats`` after ``--warmup``), images/s, peak memory (on CPU the
process peak-RSS increase measured in a fresh subprocess per measurement so peaks never mix; on CUDA
``torch.cuda.max_memory_allocated``). In the same run: diffusers' ``AutoencoderKL`` with the SD-VAE architecture
(random weights; skipped with a message if diffusers is missing), the fp32 matmul peak (best of several square
sizes), the micro model's training-step throughput (fwd + bwd + AdamW of L1 + KL, no LPIPS; achieved FLOP/s =
3 × forward MACs × 2 / step time) interleaved with that of a plain conv VAE of the same size
(``configs/_base_/models/cnn-vae-micro_f8d16.py``) and, with ``--switches``, each speed switch's time ratio against
the plain run. On CPU, glibc malloc is tuned for both models alike (``--allocator``, ``transvae.utils.allocator``).
Latencies of our model and the reference are interleaved repeat by repeat in one process, so machine-load drift hits
both: read the ratios, not the absolute times, on a shared machine.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import torch  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MICRO_CONFIG = osp.join(REPO, 'configs/_base_/models/transvae-micro_f8d16.py')
CNN_MICRO_CONFIG = osp.join(REPO, 'configs/_base_/models/cnn-vae-micro_f8d16.py')
SD_VAE_ARCH = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                   down_block_types=('DownEncoderBlock2D', ) * 4, up_block_types=('UpDecoderBlock2D', ) * 4)


# ---------------------------------------------------------------------------------------------------------------------
# arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('configs', nargs='*', help='model config files')
    p.add_argument('--checkpoint', nargs='*', default=None, help='checkpoint per config (random weights if absent)')
    p.add_argument('--preset', help="merge cfg.presets[PRESET] (e.g. 'cpu': micro widths)")
    p.add_argument('--cfg-options', nargs='*', default=[], help='key=value overrides (python literals)')
    p.add_argument('--resolutions', type=int, nargs='*', default=[256, 512, 1024, 2048], help='latency sizes')
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[1])
    p.add_argument('--modes', nargs='+', default=['encode', 'decode'], choices=['encode', 'decode'])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--mem-resolutions', type=int, nargs='*', default=None,
                   help='peak-memory sizes (fresh subprocess each; default: --resolutions)')
    p.add_argument('--mem-modes', nargs='+', default=None, choices=['encode', 'decode'],
                   help='modes of the peak-memory runs (default: --modes)')
    p.add_argument('--no-memory', action='store_true', help='skip the peak-memory subprocesses')
    p.add_argument('--tiled-mem-resolutions', type=int, nargs='*', default=[],
                   help='decode peak memory with tiling at these sizes (our configs only)')
    p.add_argument('--tile', default=None, help="'auto' or tile size in pixels (latency and tiled memory runs)")
    p.add_argument('--overlap', type=int, default=None, help='tile overlap in pixels')
    p.add_argument('--memory-budget-mb', type=float, default=None, help="budget for --tile auto")
    p.add_argument('--tile-mode', choices=['blend', 'exact'], default='blend',
                   help="model.tiled_encode / tiled_decode mode (--tile-limit counts whole encoder / decoder calls, "
                        "which only 'blend' makes)")
    p.add_argument('--tile-limit', type=int, default=None,
                   help='tiled memory runs stop after this many tiles (the peak is reached at the first tile: '
                        'the full-size accumulators exist from then on and every tile has the same size)')
    p.add_argument('--amp', choices=['fp32', 'bf16', 'fp16'], default='fp32')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--compile', nargs='?', const='default', default=None, metavar='MODE',
                   help='torch.compile encoder and decoder (optional mode)')
    p.add_argument('--sdpa-backend', default='auto', choices=['auto', 'math', 'flash', 'efficient', 'cudnn'])
    p.add_argument('--grad-checkpoint', action='store_true', help='activation checkpointing in the train step')
    p.add_argument('--train-step', action='store_true', help='measure the micro training step')
    p.add_argument('--train-config', default=MICRO_CONFIG)
    p.add_argument('--train-reference', default=CNN_MICRO_CONFIG,
                   help="plain conv VAE whose train step is measured alongside ('' to skip)")
    p.add_argument('--train-batch', type=int, default=16)
    p.add_argument('--train-res', type=int, default=64)
    p.add_argument('--train-repeats', type=int, default=10)
    p.add_argument('--switches', action='store_true',
                   help='measure each speed switch alone vs the plain run (first config, first resolution, '
                        'encode+decode; and the train step when --train-step)')
    p.add_argument('--switch-list', nargs='+', default=['channels_last', 'bf16', 'sdpa_math', 'compile'],
                   help='switches measured by --switches')
    p.add_argument('--no-reference', action='store_true', help='skip the SD-VAE reference')
    p.add_argument('--no-peak', action='store_true', help='skip the matmul peak')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--allocator', choices=['tuned', 'glibc'], default='tuned',
                   help="CPU: 'tuned' raises glibc's mmap threshold (transvae.utils.allocator) for our model and the "
                        "reference alike; 'glibc' leaves the default (every >32 MiB tensor a fresh mmap)")
    p.add_argument('--json', help='write all results to this JSON file')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--_worker', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.configs and not args._worker:
        p.error('give at least one config')
    if args.mem_resolutions is None:
        args.mem_resolutions = list(args.resolutions)
    if args.mem_modes is None:
        args.mem_modes = list(args.modes)
    if args.preset == 'cpu' and args.train_batch == 16 and '--train-batch' not in (argv or sys.argv):
        args.train_batch = 4
    return args


def _parse_options(opts: list[str]) -> dict:
    import ast
    out = {}
    for kv in opts:
        k, v = kv.split('=', 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------------------------
# models
def build_ours(config: str, checkpoint: str | None, preset: str | None, cfg_options: dict, device: str) -> Any:
    from transvae.apis import init_model
    return init_model(config, checkpoint, device=device, cfg_options=cfg_options or None, preset=preset)


class _SDEnc(torch.nn.Module):
    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.vae.encoder(x)
        return self.vae.quant_conv(h) if self.vae.quant_conv is not None else h


class _SDDec(torch.nn.Module):
    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = self.vae.post_quant_conv(z) if self.vae.post_quant_conv is not None else z
        return self.vae.decoder(z)


class Runner:
    """Uniform encode / decode callables for our VAE and the SD-VAE reference."""

    def __init__(self, kind: str, model: torch.nn.Module, factor: int, latent: int) -> None:
        self.kind, self.model, self.factor, self.latent = kind, model, factor, latent
        if kind == 'sdvae':
            self.enc, self.dec = _SDEnc(model), _SDDec(model)
        else:
            self.enc, self.dec = model.encoder, model.decoder

    def inputs(self, mode: str, b: int, res: int, device: str, channels_last: bool = False) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        if mode == 'encode':
            x = torch.rand(b, 3, res, res, generator=g) * 2 - 1
        else:
            s = res // self.factor
            x = torch.randn(b, self.latent, s, s, generator=g)
        x = x.to(device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def build_sdvae(device: str) -> Runner | None:
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        print('[benchmark] diffusers is not installed: SD-VAE reference skipped (pip install diffusers)')
        return None
    torch.manual_seed(0)
    vae = AutoencoderKL(**SD_VAE_ARCH).to(device).eval()
    return Runner('sdvae', vae, 8, 4)


def macs_of(runner: Runner, mode: str, res: int) -> int:
    """MACs of one encode or decode at ``res``² (batch 1): exact ``a·P + b·P²`` fit from two small traces."""
    from transvae.utils.complexity import count_macs
    f = runner.factor
    r1, r2 = 4 * f, 8 * f
    mod = runner.enc if mode == 'encode' else runner.dec

    def at(r: int) -> int:
        shape = (1, 3, r, r) if mode == 'encode' else (1, runner.latent, r // f, r // f)
        return count_macs(mod, shape)['total']

    key = (mode, r1, r2)
    cache = runner.__dict__.setdefault('_macs', {})
    if key not in cache:
        cache[key] = (at(r1), at(r2))
    m1, m2 = cache[key]
    p1, p2 = float(r1 * r1), float(r2 * r2)
    b = max((m2 / p2 - m1 / p1) / (p2 - p1), 0.0)
    a = m1 / p1 - b * p1
    p = float(res * res)
    return int(round(a * p + b * p * p))


# ---------------------------------------------------------------------------------------------------------------------
# timing helpers
def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: str,
                bar: Any = None) -> dict[str, list[float]]:
    """Run each callable ``warmup`` then ``repeats`` times, interleaved round-robin; returns all timings."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            out[k].append(timed(fn, device))
        if bar is not None:
            bar.update(1)
    return out


def matmul_peak(device: str, sizes: tuple[int, ...] = (1024, 2048, 3072, 4096), repeats: int = 3,
                dtype: torch.dtype = torch.float32) -> dict:
    """Best achieved FLOP/s of square matmuls over ``sizes`` (2 n³ FLOPs each)."""
    best, per = 0.0, {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        ts = [timed(lambda: a @ b, device) for _ in range(repeats)]
        fl = 2 * n ** 3 / min(ts)
        per[n] = fl / 1e9
        best = max(best, fl)
    return dict(gflops=best / 1e9, per_size_gflops=per)


# ---------------------------------------------------------------------------------------------------------------------
# memory worker (fresh process per measurement)
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


def _setup_allocator(kind: str, device: str) -> dict:
    """Tune glibc malloc for CPU runs unless ``kind == 'glibc'``; what is in effect, for the report."""
    from transvae.utils.allocator import allocator_state, tune_cpu_allocator
    if kind == 'tuned' and not device.startswith('cuda'):
        tune_cpu_allocator()
    return allocator_state()


def run_worker(spec: dict) -> dict:
    """Build the model named in ``spec``, run one call and report the peak memory increase."""
    from transvae.models.utils.speed import apply_channels_last, autocast, sdpa_backend, set_grad_checkpointing
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = spec['device']
    _setup_allocator(spec.get('allocator', 'tuned'), device)
    torch.manual_seed(0)
    if spec['kind'] == 'sdvae':
        runner = build_sdvae(device)
    else:
        model = build_ours(spec['config'], spec.get('checkpoint'), spec.get('preset'), spec.get('cfg_options', {}),
                           device)
        runner = Runner('ours', model, model.downsample_factor, model.latent_channels)
    if spec.get('channels_last'):
        apply_channels_last(runner.model)
    mode, b, res = spec['mode'], spec['batch'], spec['res']
    if mode == 'train':
        set_grad_checkpointing(runner.model, bool(spec.get('grad_checkpoint')))
        step, _ = make_train_step(runner.model, b, res, device, spec.get('amp'))
        fn = step
    else:
        x = runner.inputs(mode, b, res, device, spec.get('channels_last', False))
        tile = spec.get('tile')
        if tile is not None:
            tkw = dict(tile=tile, overlap=spec.get('overlap'), memory_budget_mb=spec.get('memory_budget_mb'),
                       mode=spec.get('tile_mode', 'blend'))
            if mode == 'encode':
                def fn():
                    return runner.model.tiled_encode(x, **tkw).mean
            else:
                def fn():
                    return runner.model.tiled_decode(x, **tkw)
            if spec.get('tile_limit'):
                fn = _limit_tiles(runner, mode, fn, spec['tile_limit'])
            chosen = None
            if tile == 'auto':  # calibrate before the baseline so its tiny peaks do not count
                from transvae.models.autoencoders.tiling import TilingConfig, choose_tile
                shape = (b, 3, res, res)
                chosen = choose_tile(runner.model, mode, shape, TilingConfig(**tkw))
                spec['auto_tile'] = chosen
                spec['estimated_tile_peak_mb'] = runner.model.estimate_peak_memory(
                    shape, mode, tile=chosen, mode=tkw['mode']) / 2**20
        else:
            mod = runner.enc if mode == 'encode' else runner.dec

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


def _limit_tiles(runner: Runner, mode: str, fn: Callable[[], Any], limit: int) -> Callable[[], Any]:
    """Wrap ``fn`` so the tiled call stops (cleanly) after ``limit`` encoder / decoder calls."""
    net = runner.model.encoder if mode == 'encode' else runner.model.decoder
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


def measure_memory(spec: dict, timeout: float | None = None) -> dict:
    cmd = [sys.executable, osp.abspath(__file__), '--_worker', json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return dict(error='timeout')
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith('{'):
            return json.loads(line)
    return dict(error=(proc.stderr or proc.stdout)[-2000:])


# ---------------------------------------------------------------------------------------------------------------------
# training step
def make_train_step(model: torch.nn.Module, b: int, res: int, device: str, amp: str | None = None,
                    channels_last: bool = False) -> tuple[Callable[[], Any], torch.Tensor]:
    """One fwd + bwd + AdamW step of the VAE loss without LPIPS (L1 + KL with the config's KL weight)."""
    from transvae.models.utils.speed import autocast
    model.train()
    params = [p for n, p in model.named_parameters() if not n.startswith('rec_loss') and p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(b, 3, res, res, generator=g) * 2 - 1).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    kl_w = getattr(model.kl_loss, 'loss_weight', 1e-8)

    def step() -> torch.Tensor:
        with autocast(device, amp):
            post = model.encode(x)
            rec = model.decode(post.sample(), out_size=x.shape[-2:])
            loss = (rec.float() - x).abs().mean() + kl_w * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, x


# ---------------------------------------------------------------------------------------------------------------------
# main
def _fmt(v: float | None, nd: int = 2) -> str:
    return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.{nd}f}'


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args._worker:
        print(json.dumps(run_worker(json.loads(args._worker))))
        return {}
    from tqdm import tqdm

    from transvae.models.utils.speed import (apply_channels_last, autocast, compile_autoencoder, sdpa_backend,
                                             set_grad_checkpointing)
    from transvae.utils.complexity import count_params

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = args.device
    allocator = _setup_allocator(args.allocator, device)
    cfg_options = _parse_options(args.cfg_options)
    ckpts = args.checkpoint or [None] * len(args.configs)
    results: dict[str, Any] = dict(
        machine=dict(platform=platform.platform(), processor=platform.processor(), cpu_count=os.cpu_count(),
                     torch_threads=torch.get_num_threads(), torch=torch.__version__, device=device,
                     cuda=torch.cuda.get_device_name() if device.startswith('cuda') else None, **allocator),
        command=' '.join([osp.relpath(__file__, REPO)] + (argv if argv is not None else sys.argv[1:])),
        switches=dict(amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                      sdpa_backend=args.sdpa_backend, grad_checkpoint=args.grad_checkpoint, tile=args.tile),
        models={}, reference=None, ratios={})
    amp = None if args.amp == 'fp32' else args.amp
    tile = args.tile if args.tile in (None, 'auto') else int(args.tile)

    # ---- models
    runners: dict[str, Runner] = {}
    for cfg_path, ck in zip(args.configs, ckpts):
        name = osp.splitext(osp.basename(cfg_path))[0] + (f'[{args.preset}]' if args.preset else '')
        model = build_ours(cfg_path, ck, args.preset, cfg_options, device)
        if args.channels_last:
            apply_channels_last(model)
        if args.compile:
            compile_autoencoder(model, args.compile)
        runners[name] = Runner('ours', model, model.downsample_factor, model.latent_channels)
        results['models'][name] = dict(config=cfg_path, checkpoint=ck, params_encoder_M=count_params(model.encoder) / 1e6,
                                       params_decoder_M=count_params(model.decoder) / 1e6, latency={}, memory={},
                                       gmacs={})
    ref = None if args.no_reference else build_sdvae(device)
    if ref is not None:
        if args.channels_last:
            apply_channels_last(ref.model)
        results['reference'] = dict(name='SD-VAE (diffusers AutoencoderKL, random weights)', arch=SD_VAE_ARCH,
                                    params_M=count_params(ref.model) / 1e6, latency={}, memory={}, gmacs={})
    all_runners = dict(runners, **({'SD-VAE': ref} if ref is not None else {}))

    def entry(name: str) -> dict:
        return results['reference'] if name == 'SD-VAE' else results['models'][name]

    # ---- GMACs (attention included; model-intrinsic, switches do not change them)
    for name, r in all_runners.items():
        for res in sorted(set(args.resolutions) | set(args.mem_resolutions) | set(args.tiled_mem_resolutions)):
            g = {m: macs_of(r, m, res) / 1e9 for m in ('encode', 'decode')}
            entry(name)['gmacs'][str(res)] = dict(g, total=g['encode'] + g['decode'])

    # ---- matmul peak
    peak_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(args.amp, torch.float32)
    if not args.no_peak:  # in the dtype the model runs in (autocast matmuls)
        results['matmul_peak'] = dict(matmul_peak(device, dtype=peak_dtype), dtype=str(peak_dtype))

    # ---- latency (ours and the reference interleaved per repeat)
    n_lat = len(args.resolutions) * len(args.batch_sizes) * len(args.modes) * args.repeats
    with tqdm(total=n_lat, desc='latency', disable=n_lat == 0) as bar:
        for res in args.resolutions:
            for b in args.batch_sizes:
                for mode in args.modes:
                    fns = {}
                    for name, r in all_runners.items():
                        x = r.inputs(mode, b, res, device, args.channels_last)
                        if name != 'SD-VAE' and tile is not None and (tile == 'auto' or res > tile):
                            tkw = dict(tile=tile, overlap=args.overlap, memory_budget_mb=args.memory_budget_mb,
                                       mode=args.tile_mode)
                            if mode == 'encode':
                                fns[name] = (lambda r=r, x=x: r.model.tiled_encode(x, **tkw).mean)
                            else:
                                fns[name] = (lambda r=r, x=x: r.model.tiled_decode(x, **tkw))
                        else:
                            mod = r.enc if mode == 'encode' else r.dec
                            fns[name] = (lambda mod=mod, x=x: mod(x))

                    def wrap(fn):
                        def run():
                            with torch.no_grad(), autocast(device, amp), sdpa_backend(args.sdpa_backend):
                                return fn()
                        return run

                    ts = interleaved({k: wrap(v) for k, v in fns.items()}, args.repeats, args.warmup, device, bar)
                    for name, t in ts.items():
                        med = statistics.median(t)
                        entry(name)['latency'].setdefault(str(res), {}).setdefault(str(b), {})[mode] = dict(
                            median_s=med, all_s=t, images_per_s=b / med)
                    if ref is not None:
                        for name in runners:
                            ratios = [a / c for a, c in zip(ts[name], ts['SD-VAE'])]
                            results['ratios'].setdefault(name, {}).setdefault(f'{mode}@{res}/b{b}', {})[
                                'time_ours_over_sdvae_median_of_paired'] = statistics.median(ratios)

    # encode+decode summary ratios vs GMAC ratios
    if ref is not None and {'encode', 'decode'} <= set(args.modes):
        for name in runners:
            for res in args.resolutions:
                for b in args.batch_sizes:
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
    if not args.no_memory:
        specs = []
        for res in args.mem_resolutions:
            for b in args.batch_sizes:
                for mode in args.mem_modes:
                    for name in all_runners:
                        specs.append((name, res, b, mode, None))
        for res in args.tiled_mem_resolutions:
            for name in runners:
                specs.append((name, res, 1, 'decode', tile if tile is not None else 'auto'))
        for name, res, b, mode, t in tqdm(specs, desc='memory', disable=not specs):
            spec = dict(kind='sdvae' if name == 'SD-VAE' else 'ours', mode=mode, batch=b, res=res, device=device,
                        amp=amp, channels_last=args.channels_last, sdpa_backend=args.sdpa_backend,
                        threads=torch.get_num_threads(), tile=t, overlap=args.overlap, allocator=args.allocator,
                        memory_budget_mb=args.memory_budget_mb, preset=args.preset, cfg_options=cfg_options,
                        tile_limit=args.tile_limit if t is not None else None, tile_mode=args.tile_mode)
            if name != 'SD-VAE':
                spec.update(config=results['models'][name]['config'], checkpoint=results['models'][name]['checkpoint'])
            key = f'{mode}@{res}/b{b}' + (f'/tile{t}' if t is not None else '')
            entry(name)['memory'][key] = measure_memory(spec)
        if ref is not None:
            for name in runners:
                for key, m in results['models'][name]['memory'].items():
                    rm = results['reference']['memory'].get(key)
                    if rm and 'peak_delta_mb' in rm and 'peak_delta_mb' in m:
                        results['ratios'].setdefault(name, {}).setdefault(key, {})['peak_mem_ours_over_sdvae'] = (
                            m['peak_delta_mb'] / rm['peak_delta_mb'])

    # ---- training step (micro model, and a plain conv VAE of its size in the same interleaved loop)
    if args.train_step:
        train_cfgs = {'model': args.train_config}
        if args.train_reference:
            train_cfgs['reference'] = args.train_reference
        steps, macs = {}, {}
        for role, cfg_path in train_cfgs.items():
            tm = build_ours(cfg_path, None, None, {}, device)
            tr = Runner('ours', tm, tm.downsample_factor, tm.latent_channels)
            macs[role] = (macs_of(tr, 'encode', args.train_res) + macs_of(tr, 'decode', args.train_res)) * \
                args.train_batch
            if args.channels_last:
                apply_channels_last(tm)
            set_grad_checkpointing(tm, args.grad_checkpoint)
            steps[role] = make_train_step(tm, args.train_batch, args.train_res, device, amp, args.channels_last)[0]
        if not args.no_peak:  # re-measure the peak right before: load drifts on a shared machine
            results['matmul_peak_before_train'] = dict(matmul_peak(device, dtype=peak_dtype), dtype=str(peak_dtype))
        with sdpa_backend(args.sdpa_backend):
            ts = interleaved(steps, args.train_repeats, 2, device)
        peak = max(results.get('matmul_peak', {}).get('gflops', 0),
                   results.get('matmul_peak_before_train', {}).get('gflops', 0)) * 1e9
        for role, cfg_path in train_cfgs.items():
            med = statistics.median(ts[role])
            achieved = 3 * macs[role] * 2 / med
            results['train_step' if role == 'model' else 'train_step_reference'] = dict(
                config=cfg_path, batch=args.train_batch, res=args.train_res, forward_gmacs=macs[role] / 1e9,
                median_s=med, all_s=ts[role], images_per_s=args.train_batch / med, achieved_gflops=achieved / 1e9,
                fraction_of_matmul_peak=achieved / peak if peak else None)

    # ---- switches, one at a time vs the plain run (same process, interleaved)
    if args.switches and runners:
        results['switch_ratios'] = run_switches(args, next(iter(results['models'].values()))['config'], device,
                                                cfg_options)

    print_report(results)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as fh:
            json.dump(results, fh, indent=1)
        print(f'[benchmark] wrote {args.json}')
    return results


def run_switches(args: argparse.Namespace, config: str, device: str, cfg_options: dict) -> dict:
    """Time ratio (switch / plain, median of paired repeats) of encode+decode at the first resolution and of the
    micro train step; grad checkpointing is reported as a peak-memory ratio (fresh subprocesses) and time ratio."""
    from tqdm import tqdm

    from transvae.models.utils.speed import (apply_channels_last, autocast, compile_autoencoder, sdpa_backend,
                                             set_grad_checkpointing)
    res = args.resolutions[0] if args.resolutions else 256
    out: dict[str, Any] = {'resolution': res}
    base = build_ours(config, None, args.preset, cfg_options, device)

    def ed(model, cl=False):
        x = torch.rand(1, 3, res, res, device=device) * 2 - 1
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)

        def run():
            return model.decoder(model.encoder(x)[:, :model.latent_channels])
        return run

    variants: dict[str, Callable[[], Any]] = {}
    for sw in args.switch_list:
        m = copy.deepcopy(base)
        if sw == 'channels_last':
            apply_channels_last(m)
            variants[sw] = ed(m, True)
        elif sw == 'bf16':
            fn = ed(m)
            variants[sw] = (lambda fn=fn: _ctx_call(fn, autocast(device, 'bf16')))
        elif sw == 'sdpa_math':
            fn = ed(m)
            variants[sw] = (lambda fn=fn: _ctx_call(fn, sdpa_backend('math')))
        elif sw == 'compile':
            compile_autoencoder(m)
            variants[sw] = ed(m)
    plain = ed(base)
    fns = {'plain': plain, **variants}

    def nograd(fn):
        def run():
            with torch.no_grad():
                return fn()
        return run

    t0 = time.perf_counter()
    with tqdm(total=args.repeats, desc='switches enc+dec') as bar:
        ts = interleaved({k: nograd(v) for k, v in fns.items()}, args.repeats, 1, device, bar)
    out['compile_warmup_included_s'] = time.perf_counter() - t0
    out['enc+dec'] = {k: dict(median_s=statistics.median(v),
                              ratio_vs_plain=statistics.median([a / b for a, b in zip(v, ts['plain'])]))
                      for k, v in ts.items()}
    if args.train_step:
        tm = build_ours(args.train_config, None, None, {}, device)
        steps = {}
        for sw in ['plain'] + [s for s in args.switch_list if s != 'sdpa_math'] + ['grad_checkpoint']:
            m = copy.deepcopy(tm)
            cl = sw == 'channels_last'
            if cl:
                apply_channels_last(m)
            if sw == 'compile':
                compile_autoencoder(m)
            set_grad_checkpointing(m, sw == 'grad_checkpoint')
            steps[sw] = make_train_step(m, args.train_batch, args.train_res, device,
                                        'bf16' if sw == 'bf16' else None, cl)[0]
        ts = interleaved(steps, args.train_repeats, 2, device)
        out['train_step'] = {k: dict(median_s=statistics.median(v),
                                     ratio_vs_plain=statistics.median([a / b for a, b in zip(v, ts['plain'])]))
                             for k, v in ts.items()}
        if not args.no_memory:
            mem = {}
            for gc in (False, True):
                spec = dict(kind='ours', config=args.train_config, mode='train', batch=args.train_batch,
                            res=args.train_res, device=device, grad_checkpoint=gc, threads=torch.get_num_threads(),
                            allocator=args.allocator)
                mem['grad_checkpoint' if gc else 'plain'] = measure_memory(spec)
            out['train_step_memory'] = mem
            if all('peak_delta_mb' in v for v in mem.values()):
                out['train_step_memory']['ratio_grad_checkpoint_vs_plain'] = (
                    mem['grad_checkpoint']['peak_delta_mb'] / mem['plain']['peak_delta_mb'])
    return out


def _ctx_call(fn: Callable[[], Any], ctx: contextlib.AbstractContextManager) -> Any:
    with ctx:
        return fn()


def print_report(r: dict) -> None:
    print('\n=== benchmark:', r['machine']['device'], r['machine']['processor'] or r['machine']['platform'],
          f"threads={r['machine']['torch_threads']}", '===')
    print('command:', r['command'])
    print(f"allocator: {r['machine'].get('allocator')}, mmap threshold "
          f"{r['machine'].get('mmap_threshold_mb') or 'default'} MiB")
    if 'matmul_peak' in r:
        print(f"{r['matmul_peak'].get('dtype', 'fp32')} matmul peak: {r['matmul_peak']['gflops']:.1f} GFLOP/s "
              f"(per size: {', '.join(f'{k}: {v:.0f}' for k, v in r['matmul_peak']['per_size_gflops'].items())})")
    rows = list(r['models'].items()) + ([('SD-VAE', r['reference'])] if r.get('reference') else [])
    print(f"{'model':32s} {'params(M)':>10s}")
    for name, e in rows:
        p = e.get('params_M', e.get('params_encoder_M', 0) + e.get('params_decoder_M', 0))
        print(f'{name:32s} {p:10.1f}')
    print(f"\n{'model':32s} {'res':>5s} {'b':>3s} {'GMACs enc/dec':>16s} {'enc s':>8s} {'dec s':>8s} {'img/s':>7s}")
    for name, e in rows:
        for res, per_b in e['latency'].items():
            for b, lat in per_b.items():
                g = e['gmacs'].get(res, {})
                te, td = lat.get('encode', {}).get('median_s'), lat.get('decode', {}).get('median_s')
                ips = int(b) / ((te or 0) + (td or 0)) if (te or td) else None
                print(f"{name:32s} {res:>5s} {b:>3s} {_fmt(g.get('encode'), 1):>7s}/{_fmt(g.get('decode'), 1):<8s} "
                      f'{_fmt(te, 3):>8s} {_fmt(td, 3):>8s} {_fmt(ips, 2):>7s}')
    print(f"\n{'model':32s} {'memory run':28s} {'peak MiB':>9s} {'proc peak':>10s} {'wall s':>8s}")
    for name, e in rows:
        for key, m in e['memory'].items():
            if 'error' in m:
                print(f"{name:32s} {key:28s} error: {m['error'][-200:]}")
                continue
            print(f"{name:32s} {key:28s} {m['peak_delta_mb']:9.0f} {m['peak_rss_mb']:10.0f} {m['wall_s']:8.1f}")
    if r['ratios']:
        print('\nratios vs SD-VAE (same run):')
        for name, rr in r['ratios'].items():
            for k, v in rr.items():
                print(f'  {name} {k}: ' + ', '.join(f'{kk}={vv:.3f}' for kk, vv in v.items()))
    for key in ('train_step', 'train_step_reference'):
        if key in r:
            t = r[key]
            frac = t['fraction_of_matmul_peak']
            print(f"{'' if key == 'train_step_reference' else chr(10)}train step ({osp.basename(t['config'])}, "
                  f"b{t['batch']} @ {t['res']}², {t['forward_gmacs']:.2f} fwd GMACs): {t['median_s']:.3f} s, "
                  f"{t['images_per_s']:.1f} img/s, {t['achieved_gflops']:.1f} GFLOP/s achieved"
                  + (f' = {100 * frac:.0f}% of the matmul peak' if frac else ''))
    if 'switch_ratios' in r:
        print('\nswitch time ratios (switch / plain; < 1 is faster):')
        for part in ('enc+dec', 'train_step'):
            for k, v in r['switch_ratios'].get(part, {}).items():
                print(f"  {part:10s} {k:16s} {v['ratio_vs_plain']:.3f}  ({v['median_s']:.3f} s)")
        mem = r['switch_ratios'].get('train_step_memory', {})
        if 'ratio_grad_checkpoint_vs_plain' in mem:
            print(f"  train_step peak memory, grad checkpoint / plain: {mem['ratio_grad_checkpoint_vs_plain']:.3f}")


if __name__ == '__main__':
    main()
