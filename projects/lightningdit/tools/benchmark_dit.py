"""LightningDiT training throughput: images/s of a full training step and its fraction of the matmul peak (MFU).

``.venv/bin/python -m projects.lightningdit.tools.benchmark_dit [--archs B/1 XL/1] [--in-channels 32] [--latent-size 16]
[--batch-size 32] [--amp bfloat16] [--repeats 10] [--warmup 3] [--json OUT.json]``

A step is the flow-matching loss of ``LatentFlowModel`` (logit-normal t, MSE + cosine velocity loss), backward and
AdamW. FLOPs are analytic (``dit_forward_flops``, matmuls only) times 3 for forward + backward; the peak is the best
square-matmul rate measured on the same device in the step's dtype (bf16 with ``--amp bfloat16`` on CUDA, fp32 on
CPU unless ``--amp``). Run from the repository root, as a module (``-m``: the project imports as
``projects.lightningdit``).

The device is CUDA; without a CUDA device the tool refuses (one ``error:`` line, exit 2) instead of falling back to
the CPU, where the B/1 and XL/1 steps need tens of GB and hours. A CPU run is explicit: ``--device cpu``, and it is
bounded by ``--cpu-max-gb`` (a memory estimate of the step, checked before anything is built), e.g.
``--device cpu --archs micro --in-channels 16 --latent-size 16 --batch-size 16``.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='LightningDiT training throughput and MFU')
    p.add_argument('--archs', nargs='+', default=['B/1', 'XL/1'])
    p.add_argument('--in-channels', type=int, default=32)
    p.add_argument('--latent-size', type=int, default=16)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--num-classes', type=int, default=1000)
    p.add_argument('--amp', choices=['bfloat16', 'float16'], help='autocast dtype (default: fp32)')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--device', default=None,
                   help='cuda (default; refused without a CUDA device) or cpu (explicit, bounded by --cpu-max-gb)')
    p.add_argument('--cpu-max-gb', type=float, default=8.0,
                   help='with --device cpu: refuse a step whose estimated memory exceeds this many GB (default 8)')
    p.add_argument('--json', help='write the results here')
    args = p.parse_args(argv)
    check_device(p, args)
    return args


def estimate_step_gb(arch: str, args: argparse.Namespace) -> float:
    """A rough upper estimate (GB) of one fp32 training step of ``arch``: weights, gradients and AdamW's two moments
    (16 bytes per parameter; ~18 width² per block: attention, SwiGLU, adaLN) plus the activations kept for backward
    (~40 floats per token and channel per block)."""
    from projects.lightningdit.lightningdit.models.lightningdit import ARCHS
    depth, width, _heads, patch = ARCHS[arch]
    tokens = args.batch_size * (args.latent_size // patch) ** 2
    params = depth * 18 * width ** 2 + width * args.num_classes
    return (16 * params + 4 * 40 * tokens * width * depth) / 1e9


def check_device(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Resolve ``--device``: CUDA unless ``cpu`` is asked for; no silent CPU fallback; a CPU run is bounded."""
    if args.device is None or str(args.device).startswith('cuda'):
        if not torch.cuda.is_available():
            parser.exit(2, f'error: no CUDA device (torch {torch.__version__}): the DiT step benchmark of '
                        f'{" ".join(args.archs)} needs a GPU; for a bounded CPU run pass --device cpu '
                        '(e.g. --archs micro --in-channels 16 --latent-size 16 --batch-size 16)\n')
        args.device = args.device or 'cuda'
        return
    if args.device != 'cpu':
        parser.exit(2, f'error: --device must be cuda, cuda:N or cpu, got {args.device!r}\n')
    try:
        need = {a: estimate_step_gb(a, args) for a in args.archs}
    except (ImportError, KeyError, TypeError):
        return  # an unknown arch: the model build names it
    too_big = {a: gb for a, gb in need.items() if gb > args.cpu_max_gb}
    if too_big:
        parts = ', '.join(f'{a} ~{gb:.0f} GB' for a, gb in too_big.items())
        parser.exit(2, f'error: --device cpu: the training step of {parts} at batch {args.batch_size} exceeds '
                    f'--cpu-max-gb {args.cpu_max_gb:g}; use a GPU, a smaller --batch-size / --archs micro, or raise '
                    '--cpu-max-gb\n')


def bench_arch(arch: str, args: argparse.Namespace, peak_gflops: float) -> dict:
    from projects.lightningdit.lightningdit.models.flops import dit_forward_flops
    from transvae.benchmark.timing import timed
    from transvae.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(type='LatentFlowModel', latent_size=args.latent_size,
                              backbone=dict(type='LightningDiT', arch=arch, in_channels=args.in_channels,
                                            num_classes=args.num_classes))).to(args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.95), weight_decay=0.0)
    b, s = args.batch_size, args.latent_size
    x = torch.randn(b, args.in_channels, s, s, device=args.device)
    y = torch.randint(0, args.num_classes, (b,), device=args.device)
    dtype = getattr(torch, args.amp) if args.amp else None
    dev_type = 'cuda' if str(args.device).startswith('cuda') else 'cpu'

    def step() -> None:
        with torch.autocast(dev_type, dtype=dtype, enabled=dtype is not None):
            loss = sum(model.loss(x, y).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    times = [timed(step, str(args.device)) for _ in range(args.repeats)]
    t = statistics.median(times)
    flops = 3 * dit_forward_flops(model.backbone, b, (s, s))
    params = sum(p.numel() for p in model.parameters())
    return dict(arch=arch, params_m=round(params / 1e6, 2), batch=b, latent=[args.in_channels, s, s],
                step_s=round(t, 4), img_per_s=round(b / t, 2), step_tflop=round(flops / 1e12, 4),
                achieved_gflops=round(flops / t / 1e9, 1), mfu=round(flops / t / 1e9 / peak_gflops, 3))


def main(argv=None) -> dict:
    from transvae.benchmark.timing import matmul_peak
    from transvae.apis import register_all_modules
    args = parse_args(argv)
    register_all_modules()
    import projects.lightningdit.lightningdit  # noqa: F401  (registration)
    peak_dtype = getattr(torch, args.amp) if args.amp and str(args.device).startswith('cuda') else torch.float32
    sizes = (4096, 8192) if str(args.device).startswith('cuda') else (1024, 2048)
    peak = matmul_peak(str(args.device), sizes=sizes, dtype=peak_dtype)['gflops']
    device_name = torch.cuda.get_device_name() if str(args.device).startswith('cuda') else 'CPU'
    rows = [bench_arch(a, args, peak) for a in args.archs]
    out = dict(device=device_name, threads=torch.get_num_threads(), amp=args.amp, peak_dtype=str(peak_dtype),
               matmul_peak_gflops=round(peak, 1), results=rows)
    print(f'{device_name}, matmul peak {peak:.0f} GFLOP/s ({peak_dtype}), autocast {args.amp}')
    print('| arch | params | batch | step (s) | img/s | TFLOP/step | GFLOP/s | MFU |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for r in rows:
        print(f"| {r['arch']} | {r['params_m']}M | {r['batch']} | {r['step_s']} | {r['img_per_s']} | "
              f"{r['step_tflop']} | {r['achieved_gflops']} | {r['mfu']:.1%} |")
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == '__main__':
    main()
