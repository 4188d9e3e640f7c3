"""The first thing to run on a GPU: one check that fits a few minutes of GPU time (8 minutes wall in all on one
H100-class GPU), each step in its own process under its own timeout; a failed step is recorded and the next one runs.

    bash tools/analysis_tools/gpu_check.sh [--dry-run] [OUT_DIR] [--steps ...] [--budget-s S] [--peak-tflops T]

Steps (the paper's recipe configs; what the check changes in them is written into ``OUT_DIR/configs/<step>.py``, a
child config of the recipe, so every run is an ordinary ``tools/train.py`` run that can be read and repeated):

1. ``t_stage1``: 20 bf16 iterations of TransVAE-T f16d32 stage 1 (``tools/train.py --amp``; the recipe's per-GPU
   batch 32, 256² crops of the bundled photos, LPIPS-vgg, the VF loss's DINOv2 ViT-L/14 with random weights unless
   the recipe's weights file exists), saving its checkpoint;
2. ``t_gan``: 5 bf16 iterations of its GAN stage (stage 2) from that checkpoint;
3. ``dit_b1``: 20 iterations of LightningDiT-B/1 (its recipe's bf16 wrapper, batch 32) on random latents of the
   f16d32 shape (32×16×16), labelled as such;
4. ``benchmark``: ``tools/analysis_tools/benchmark.py`` rows of TransVAE-T f16d32 against its SD-VAE reference at
   256 / 512 / 1024 (bf16, batch 1, random weights): encode / decode time (interleaved in one process), peak memory
   (a fresh process each), the bf16 matmul peak;
5. ``l_fsdp``: 20 bf16 iterations of TransVAE-L f16d32 with FSDP on one rank (``tools/dist_train.sh CONFIG 1``) at
   per-GPU batch 16 (:data:`transvae.benchmark.gpu_check_steps.L_BATCH`).

For each training step: the step time (device-synchronised, median after warm-up), FLOPs per step counted by
``FlopCounterMode`` in the measured run (``transvae.benchmark.step_meter``), MFU against the device's dense bf16 peak
(``transvae.benchmark.gpu_check``'s table by device name; ``--peak-tflops`` overrides; else the measured matmul
peak), the peak memory, and for steps 1, 3 and 5 the run planner's prediction (``tools/analysis_tools/plan_run.py
CONFIG --gpus 1 --batch-size B --gpu-mem-gb G --amp bf16 --json``, run on the CPU beside the steps; "planner
unavailable" where that tool does not exist). One JSON (``gpu_check.json``) and one Markdown (``gpu_check.md``) report
in ``OUT_DIR``, rewritten after every step; exit status 1 when a step failed, timed out or was skipped. The
driver writes the steps' inputs (random latents, the photo set, the DINOv2 weights file) beside the steps: a step
starts once the inputs it reads are there.

This file is the command line only: the step plan and child configs are :mod:`transvae.benchmark.gpu_check_steps`,
running them (process groups, timeouts, planners, the report) :mod:`transvae.benchmark.gpu_check_run`, the rows and
the Markdown :mod:`transvae.benchmark.gpu_check`.

``--dry-run`` runs the same steps on the CPU at tiny sizes (micro widths, 32² crops, batch 2, 2 iterations, a 1-block
DINOv2 and DiT; the benchmark at 16 / 32 / 48 without its peak-memory processes; three step chains side by side) so the
script cannot rot (``tests/test_tools/test_gpu_check.py``). Without CUDA and without ``--dry-run`` it stops with one
``error:`` line before creating anything.
"""
from __future__ import annotations

import argparse
import datetime
import os
import os.path as osp
import shlex
import sys
from typing import Optional

from transvae.benchmark.gpu_check_steps import REPO, STEPS, CheckTools

TOOLS = osp.join(REPO, 'tools')
PLANNER = osp.join(TOOLS, 'analysis_tools', 'plan_run.py')
#: what the steps run: the repository's own entry points
CHECK_TOOLS = CheckTools(train=osp.join(TOOLS, 'train.py'), dist_train=osp.join(TOOLS, 'dist_train.sh'),
                         benchmark=osp.join(TOOLS, 'analysis_tools', 'benchmark.py'), planner=PLANNER)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('out_dir', nargs='?', default=None,
                   help='new or empty folder for the reports, logs and runs (default: work_dirs/gpu_check/<UTC time>)')
    p.add_argument('--dry-run', action='store_true', help='the same steps on the CPU at tiny sizes (CI)')
    p.add_argument('--steps', nargs='+', choices=STEPS, default=list(STEPS), help='run only these steps')
    p.add_argument('--budget-s', type=float, default=None,
                   help='wall-clock budget of the whole check (default 460 on a GPU, 300 with --dry-run): a step '
                        'gets at most what is left')
    p.add_argument('--peak-tflops', type=float, default=None, help='dense bf16 peak of the device for MFU')
    p.add_argument('--gpu-mem-gb', type=float, default=None,
                   help='device memory passed to the planner (default: the device\'s, 80 with --dry-run)')
    p.add_argument('--jobs', type=int, default=None,
                   help='step chains run at once (default 1 on a GPU: clean timings; 3 with --dry-run)')
    args = p.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 300.0 if args.dry_run else 460.0
    if args.jobs is None:
        args.jobs = 3 if args.dry_run else 1
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    import torch
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit(f'error: no CUDA device (torch {torch.__version__}): this check needs a GPU; '
                         '`bash tools/analysis_tools/gpu_check.sh --dry-run` runs the same steps on the CPU at tiny '
                         'sizes')
    if args.out_dir is None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d_%H%M%S')
        args.out_dir = osp.join(REPO, 'work_dirs', 'gpu_check', stamp + ('_dry-run' if args.dry_run else ''))
    if osp.exists(args.out_dir) and (not osp.isdir(args.out_dir) or os.listdir(args.out_dir)):
        raise SystemExit(f'error: OUT_DIR {args.out_dir} exists and is not an empty folder: give a new one (the '
                         'check never writes over an earlier report)')
    command = ' '.join(['tools/analysis_tools/gpu_check.sh'] + [shlex.quote(a) for a in (
        argv if argv is not None else sys.argv[1:])])
    from transvae.benchmark.gpu_check_run import run_check
    return run_check(args.out_dir, args.dry_run, args.steps, args.budget_s, args.jobs, command, CHECK_TOOLS,
                     peak_tflops=args.peak_tflops, gpu_mem_gb=args.gpu_mem_gb)


if __name__ == '__main__':
    sys.exit(main())
