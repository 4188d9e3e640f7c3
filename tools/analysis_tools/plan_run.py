"""Plan a training run before the GPU hour: per-GPU peak memory (DDP / FSDP, with and without activation
checkpointing), FLOPs per step, step time at a stated MFU and the wall time of the whole recipe, from one training
step of the config's real model, losses and optimizer traced on fake tensors (nothing is allocated).

Example (a paper recipe on 8 GPUs of 80 GB, bf16)::

    python tools/analysis_tools/plan_run.py configs/transvae/transvae-l_f16d32_8xb32-100e_in1k.py \
        --gpus 8 --gpu-mem-gb 80 --amp bf16 --json work_dirs/plans/transvae-l.json

``--check-cpu`` also runs the same step for real (fp32, on this CPU, in a fresh process) and prints the predicted
step peak (over the memory held before the step) against the measured peak-RSS increase; use it with small sizes
(``--preset cpu --batch-size 2 --resolution 64``). The planning lives in :mod:`transvae.benchmark.run_plan`.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys

from transvae.benchmark.run_plan import PlanOptions, format_plan, plan_run
from transvae.engine.config_validation import config_errors
from transvae.utils.cli_types import key_value, positive_float, positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='training config file')
    p.add_argument('--gpus', type=positive_int, default=8, help='number of GPUs (default 8)')
    p.add_argument('--gpu-mem-gb', type=positive_float, default=80.0, help='memory of one GPU in GiB (default 80)')
    p.add_argument('--amp', choices=['bf16', 'fp32'], default=None,
                   help="bf16: as `tools/train.py --amp`; default: the config's precision")
    p.add_argument('--batch-size', type=positive_int, default=None,
                   help="per-GPU batch (default: the recipe's global batch, NxbB of the config name, over --gpus)")
    p.add_argument('--activation-checkpointing', action='store_true',
                   help='plan with activation checkpointing of every stage that has it')
    p.add_argument('--strategy', choices=['ddp', 'fsdp'], default=None,
                   help="default: the config's (a `strategy` in the config is FSDP)")
    p.add_argument('--mfu', type=positive_float, default=0.4, help='model FLOPs utilisation (default 0.4)')
    p.add_argument('--peak-tflops', type=positive_float, default=None,
                   help='peak TFLOP/s of one GPU (default: H100 SXM dense, 989.4 bf16 / 494.7 TF32)')
    p.add_argument('--resolution', type=positive_int, default=None, help='training crop (default: the config)')
    p.add_argument('--preset', default=None, help="config preset (e.g. 'cpu')")
    p.add_argument('--cfg-options', nargs='*', type=key_value, default=[],
                   help='key=value overrides (python literals)')
    p.add_argument('--dataset-len', type=positive_int, default=1281167,
                   help='images per epoch of an epoch-based schedule (default: ImageNet-1k train)')
    p.add_argument('--no-batch-search', action='store_true',
                   help='do not trace smaller per-GPU batches when the run does not fit')
    p.add_argument('--check-cpu', action='store_true',
                   help='also measure the real step on this CPU (fp32) and compare with the prediction')
    p.add_argument('--json', help='write the plan to this JSON file (refused if it exists)')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.json and osp.exists(args.json):
        raise SystemExit(f'error: --json {args.json} exists; remove it or name another file')
    opts = PlanOptions(config=args.config, gpus=args.gpus, gpu_mem_gb=args.gpu_mem_gb, amp=args.amp,
                       batch_size=args.batch_size, activation_checkpointing=args.activation_checkpointing,
                       strategy=args.strategy, mfu=args.mfu, peak_tflops=args.peak_tflops, resolution=args.resolution,
                       preset=args.preset, cfg_options=dict(args.cfg_options), dataset_len=args.dataset_len,
                       search_batch=not args.no_batch_search)
    with config_errors(exit_on_error=True):
        if not osp.isfile(args.config):
            from transvae.utils.errors import InputNotFoundError
            raise InputNotFoundError(f'config {args.config} not found')
        plan = plan_run(opts)
        print(format_plan(plan))
        if args.check_cpu:
            from transvae.benchmark.step_memory import compare_cpu_step
            check = compare_cpu_step(args.config, plan['per_gpu_batch'], args.resolution, args.preset,
                                     opts.cfg_options, args.activation_checkpointing)
            plan['cpu_check'] = check
            print(f"  CPU check (fp32, batch {check['batch']}, {'x'.join(map(str, check['input_shape']))}): "
                  f"predicted step peak {check['predicted_mib']:.1f} MiB, measured {check['measured_mib']:.1f} MiB "
                  f"(predicted / measured {check['ratio']:.3f})")
    if args.json:
        from transvae.engine.atomic_io import atomic_write_text
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        atomic_write_text(args.json, json.dumps(plan, indent=1))
        print(f'[plan_run] wrote {args.json}')
    return plan


if __name__ == '__main__':
    main(sys.argv[1:])
