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

The measurements live in :mod:`transvae.benchmark` (``BenchmarkOptions`` / ``run_benchmark`` / ``print_report``); this
file is its command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import os.path as osp
import sys

import torch

from transvae.benchmark import BenchmarkOptions, print_report, run_benchmark
from transvae.benchmark.component_cost import COMPONENT_REMOVALS
from transvae.utils.cli_types import key_value

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MICRO_CONFIG = osp.join(REPO, 'configs/_base_/models/transvae-micro_f8d16.py')
CNN_MICRO_CONFIG = osp.join(REPO, 'configs/_base_/models/cnn-vae-micro_f8d16.py')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('configs', nargs='*', help='model config files')
    p.add_argument('--checkpoint', nargs='*', default=None, help='checkpoint per config (random weights if absent)')
    p.add_argument('--preset', help="merge cfg.presets[PRESET] (e.g. 'cpu': micro widths)")
    p.add_argument('--cfg-options', nargs='*', type=key_value, default=[],
                   help='key=value overrides (python literals)')
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
    p.add_argument('--component-costs', nargs='+', default=[], choices=sorted(COMPONENT_REMOVALS),
                   help='time the first config (enc+dec vs SD-VAE) and the train step (vs --train-reference) with '
                        'each component removed and with all removed: the most a faster kernel of it could gain')
    p.add_argument('--no-reference', action='store_true', help='skip the SD-VAE reference')
    p.add_argument('--no-peak', action='store_true', help='skip the matmul peak')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--allocator', choices=['tuned', 'live', 'glibc'], default='tuned',
                   help="CPU: 'tuned' raises glibc's mmap threshold (transvae.utils.allocator) for our model and the "
                        "reference alike; 'live' fixes it at 128 KiB (the RSS follows the live tensors); 'glibc' "
                        "leaves the default (every >32 MiB tensor a fresh mmap)")
    p.add_argument('--json', help='write all results to this JSON file')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if not args.configs:
        p.error('give at least one config')
    if args.preset == 'cpu' and args.train_batch == 16 and '--train-batch' not in (argv or sys.argv):
        args.train_batch = 4
    return args


def options_from_args(args: argparse.Namespace) -> BenchmarkOptions:
    """The library options of parsed arguments (``--cfg-options`` parsed into python values)."""
    names = {f.name for f in dataclasses.fields(BenchmarkOptions)}
    kwargs = {k: v for k, v in vars(args).items() if k in names}
    kwargs['cfg_options'] = dict(args.cfg_options)
    return BenchmarkOptions(**kwargs)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = ' '.join([osp.relpath(__file__, REPO)] + (argv if argv is not None else sys.argv[1:]))
    results = run_benchmark(options_from_args(args), command=command)
    print_report(results)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as fh:
            json.dump(results, fh, indent=1)
        print(f'[benchmark] wrote {args.json}')
    return results


if __name__ == '__main__':
    main()
