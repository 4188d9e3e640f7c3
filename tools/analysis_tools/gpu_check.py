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
   per-GPU batch 16 (:data:`L_BATCH`).

For each training step: the step time (device-synchronised, median after warm-up), FLOPs per step counted by
``FlopCounterMode`` in the measured run (``transvae.benchmark.step_meter``), MFU against the device's dense bf16 peak
(``transvae.benchmark.gpu_check``'s table by device name; ``--peak-tflops`` overrides; else the measured matmul
peak), the peak memory, and for steps 1, 3 and 5 the run planner's prediction (``tools/analysis_tools/plan_run.py
CONFIG --gpus 1 --batch-size B --gpu-mem-gb G --amp bf16 --json``, run on the CPU beside the steps; "planner
unavailable" where that tool does not exist). One JSON (``gpu_check.json``) and one Markdown (``gpu_check.md``) report
in ``OUT_DIR``, rewritten after every step; exit status 1 when a step failed, timed out or was skipped.

``--dry-run`` runs the same steps on the CPU at tiny sizes (micro widths, 32² crops, batch 2, 2 iterations, a 1-block
DINOv2 and DiT; the benchmark at 16 / 32 / 48 without its peak-memory processes; two step chains side by side) so the
script cannot rot (``tests/test_tools/test_gpu_check.py``). Without CUDA and without ``--dry-run`` it stops with one
``error:`` line before creating anything.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import os.path as osp
import platform
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PLANNER = osp.join(REPO, 'tools', 'analysis_tools', 'plan_run.py')
STEPS = ('t_stage1', 't_gan', 'dit_b1', 'benchmark', 'l_fsdp')
#: the order steps run in; a chain's steps run one after the other (t_gan starts from t_stage1's checkpoint), chains
#: run one at a time on a GPU and side by side with --jobs
CHAINS = (('t_stage1', 't_gan'), ('dit_b1', ), ('benchmark', ), ('l_fsdp', ))
_ORDER = {n: i for i, n in enumerate(['prep'] + list(STEPS) + [f'planner_{s}' for s in STEPS])}
#: per-step timeouts in seconds; the whole run is also bounded by --budget-s
GPU_TIMEOUTS = dict(t_stage1=100, t_gan=70, dit_b1=70, benchmark=140, l_fsdp=150)
DRY_TIMEOUTS = dict(t_stage1=150, t_gan=150, dit_b1=150, benchmark=150, l_fsdp=200)
PLANNER_TIMEOUT = 300.0  # from its start; planners run in the background while the steps run
RECIPE_DINOV2 = 'checkpoints/dinov2_vitl14.safetensors'
DINOV2_ARCH = 'vit_large_patch14_dinov2.lvd142m'
#: the dry run's sizes: micro widths (the cpu preset's, one block per stage), a 1-block 64-wide DINOv2 and DiT
TINY_ARCH = dict(widths=[32, 32, 64, 64, 128], depths=[1, 1, 1, 1, 1],
                 cnn_block_cfg=dict(norm_cfg=dict(type='GN', num_groups=8)), norm_out_cfg=dict(type='GN', num_groups=8))
TINY_DINOV2 = dict(depth=1, embed_dim=64, num_heads=2)
TINY_DIT = dict(arch=None, depth=1, embed_dims=64, num_heads=2, patch_size=1)
#: TransVAE-L's per-GPU batch on the GPU: half the recipe's 32, whose activations alone take most of 80 GB (the run
#: planner's row in the report says what the recipe's batch would need)
L_BATCH = 16


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
                   help='step chains run at once (default 1 on a GPU: clean timings; 2 with --dry-run)')
    args = p.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 300.0 if args.dry_run else 460.0
    if args.jobs is None:
        args.jobs = 2 if args.dry_run else 1
    return args


# ---------------------------------------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------------------------------------
def _photos_root() -> str:
    return osp.join(REPO, 'data', 'sample_photos')


def _vae_loader(dry: bool, crop: int, batch: Optional[int] = None) -> dict:
    pipeline = [dict(type='LoadImageRGB'), dict(type='RandomCrop', size=crop),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackVAEInputs')]
    loader: dict[str, Any] = dict(dataset=dict(_delete_=True, type='SamplePhotosDataset', data_root=_photos_root(),
                                               split='train', repeat=20, pipeline=pipeline))
    if dry:
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    else:
        loader.update(num_workers=min(8, max(1, (os.cpu_count() or 2) // 2)))
        if batch is not None:
            loader['batch_size'] = batch
    return loader


def _no_eval() -> dict:
    return dict(val_dataloader=None, val_cfg=None, val_evaluator=None, test_dataloader=None, test_cfg=None,
                test_evaluator=None)


def _recipe(base_config: str) -> Any:
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, base_config), import_custom_modules=False)


def _with_meter(base_config: str, out: str, name: str) -> dict:
    """custom_imports / custom_hooks of ``base_config`` plus the step meter (lists replace in mmengine configs)."""
    cfg = _recipe(base_config)
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    hooks = [dict(h) for h in (cfg.get('custom_hooks') or [])]
    hooks.append(dict(type='StepMeterHook', out_file=meter_file(out, name)))
    return dict(custom_imports=dict(imports=imports + ['transvae.benchmark.step_meter'], allow_failed_imports=False),
                custom_hooks=hooks)


def meter_file(out: str, name: str) -> str:
    return osp.join(out, 'runs', name, 'step_meter.json')


def make_plan(out: str, dry: bool, dinov2_path: str) -> list:
    """The training steps (:class:`~transvae.benchmark.gpu_check.TrainStep`) of the check."""
    from transvae.benchmark.gpu_check import TrainStep
    crop = 32 if dry else 256
    iters = 2 if dry else 20
    gan_iters = 2 if dry else 5
    random_dinov2 = osp.abspath(dinov2_path) != osp.join(REPO, RECIPE_DINOV2)
    foundation = dict(weights_path=dinov2_path)
    if dry:
        foundation['model_kwargs'] = TINY_DINOV2
    vf_note = ('VF target DINOv2 ViT-L/14 with random weights (same FLOPs)' if random_dinov2 and not dry else
               'VF target: a 1-block DINOv2 with random weights' if dry else 'VF target: the recipe\'s DINOv2 weights')
    data_note = f'data: bundled photos, {crop}² random crops'
    tiny_note = ['dry run: micro widths, batch 2'] if dry else []

    def vae(name: str, title: str, base: str, model: dict, n: int, launcher: str = 'train', plan: bool = True,
            save_last: bool = False, extra: Optional[dict] = None, notes: Optional[list] = None,
            batch: Optional[int] = None) -> Any:
        if dry:
            model = dict(model, arch=TINY_ARCH)
        ov = dict(model=model, train_dataloader=_vae_loader(dry, crop, batch), **_no_eval(),
                  default_hooks=dict(checkpoint=dict(save_last=save_last), logger=dict(interval=1 if dry else 5)),
                  **_with_meter(base, out, name), **(extra or {}))
        return TrainStep(name, title, base, ov, n, launcher=launcher, plan=plan,
                         notes=[data_note] + (notes or []) + tiny_note,
                         batch=2 if dry else batch or _recipe(base).train_dataloader.batch_size)

    steps = [
        vae('t_stage1', f'TransVAE-T f16d32 stage 1, {iters} bf16 iterations',
            'configs/transvae/transvae-t_f16d32_8xb32-100e_in1k.py', dict(vf_loss=dict(foundation_cfg=foundation)),
            iters, save_last=True, notes=[vf_note]),
        vae('t_gan', f'TransVAE-T f16d32 stage 2 (GAN), {gan_iters} bf16 iterations',
            'configs/transvae/transvae-t_f16d32_8xb32-10e-gan_in1k.py', dict(vf_loss=dict(foundation_cfg=foundation)),
            gan_iters, plan=False,
            extra=dict(load_from=osp.join(out, 'runs', 't_stage1', f'iter_{iters}.pth'))),
    ]
    dit_base = 'projects/lightningdit/configs/lightningdit-b1_transvae-l-f16d32_32xb32-200k_in1k.py'
    dit_loader: dict[str, Any] = dict(dataset=dict(data_root=osp.join(out, 'assets', 'latents_random')))
    dit = dict(train_dataloader=dit_loader, **_no_eval(),
               default_hooks=dict(checkpoint=dict(save_last=False), logger=dict(interval=1 if dry else 5)),
               **_with_meter(dit_base, out, 'dit_b1'))
    dit_notes = [f'data: random N(0, 1) latents of shape {latent_shape(dry)}, labels cycling over 1000 classes']
    if dry:
        dit_loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        dit['model'] = dict(latent_size=latent_shape(dry)[-1], backbone=TINY_DIT)
        dit_notes.append('dry run: a 1-block 64-wide DiT (patch 1), batch 2')
    steps.append(TrainStep('dit_b1', f"LightningDiT-B/1 on f16d32 latents, {iters} iterations (its recipe's bf16 "
                           'wrapper)', dit_base, dit, iters, amp=False, notes=dit_notes,
                           batch=2 if dry else _recipe(dit_base).train_dataloader.batch_size))
    steps.append(vae('l_fsdp', f'TransVAE-L f16d32 stage 1 with FSDP on one rank, {iters} bf16 iterations',
                     'configs/transvae/transvae-l_f16d32_fsdp_8xb32-100e_in1k.py',
                     dict(vf_loss=dict(foundation_cfg=foundation)), iters, launcher='dist1', batch=L_BATCH,
                     notes=[vf_note, 'launched with tools/dist_train.sh CONFIG 1']
                     + ([] if dry else [f"per-GPU batch {L_BATCH} (the recipe's: 32)"])))
    return steps


def latent_shape(dry: bool) -> tuple[int, int, int]:
    return (32, 4, 4) if dry else (32, 16, 16)


# ---------------------------------------------------------------------------------------------------------------------
# running steps
# ---------------------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _tail(path: str, n: int = 25) -> list[str]:
    try:
        with open(path, errors='replace') as fh:
            return [ln.rstrip('\n')[-300:] for ln in fh.readlines()[-n:]]
    except OSError:
        return []


@dataclass
class Running:
    """A started step: its process (leader of its own process group), log file, start time and, once it has exited,
    its end time (set by a watcher thread, so a step collected later still reports its own duration)."""

    proc: subprocess.Popen
    log: Any
    t0: float
    t_end: Optional[float] = None
    watcher: Optional[threading.Thread] = None


def start(cmd: list[str], log: str, env: Optional[dict] = None) -> Running:
    """``cmd`` in a new session (its own process group: a timeout ends the whole tree), output into ``log``."""
    os.makedirs(osp.dirname(log), exist_ok=True)
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = REPO + (os.pathsep + full_env['PYTHONPATH'] if full_env.get('PYTHONPATH') else '')
    full_env.update(env or {})
    fh = open(log, 'w')
    fh.write('$ ' + ' '.join(shlex.quote(c) for c in cmd) + '\n')
    fh.flush()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=full_env,
                            start_new_session=True)
    run = Running(proc, fh, time.monotonic())

    def watch() -> None:
        proc.wait()
        run.t_end = time.monotonic()
    run.watcher = threading.Thread(target=watch, daemon=True)
    run.watcher.start()
    return run


def finish(run: Running, timeout: float) -> dict[str, Any]:
    """Wait until ``timeout`` s after the start; then end the step's process group (TERM, then KILL after 10 s)."""
    status = 'ok'
    run.watcher.join(timeout=max(timeout - (time.monotonic() - run.t0), 0.1))
    if run.watcher.is_alive():
        status = 'timeout'
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(run.proc.pid, sig)
            except ProcessLookupError:
                break
            run.watcher.join(timeout=10)
            if not run.watcher.is_alive():
                break
    rc = run.proc.returncode
    run.log.close()
    if status == 'ok' and rc != 0:
        status = 'failed'
    return dict(status=status, rc=rc, wall_s=(run.t_end or time.monotonic()) - run.t0)


class Check:
    """The check's state: its folder, budget, step records and the report written after every step."""

    def __init__(self, args: argparse.Namespace, command: str) -> None:
        self.args = args
        self.out = osp.abspath(args.out_dir)
        self.dry = args.dry_run
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.budget_s
        self.timeouts = DRY_TIMEOUTS if self.dry else GPU_TIMEOUTS
        self.py = sys.executable
        self.lock = threading.Lock()
        self.report: dict[str, Any] = dict(
            dry_run=self.dry, command=command, budget_s=args.budget_s,
            started_utc=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC'),
            machine=_machine(self.dry), steps=[], train_rows=[], benchmark_rows=[], peak={})

    def timeout_for(self, name: str) -> float:
        return min(self.timeouts[name], self.deadline - time.monotonic() - 5)

    def record(self, name: str, result: dict, cmd: list[str], log: str, timeout: float, **extra: Any) -> dict:
        rec = dict(name=name, command=' '.join(shlex.quote(c) for c in cmd), log=osp.relpath(log, self.out),
                   timeout_s=timeout, **result, **extra)
        if rec['status'] not in ('ok', 'skipped'):
            rec['tail'] = _tail(log)
        with self.lock:
            self.report['steps'].append(rec)
            print(f"[gpu_check] {name}: {rec['status']} ({rec.get('wall_s', 0):.1f} s)", flush=True)
            self.write()
        return rec

    def skip(self, name: str, why: str) -> None:
        with self.lock:
            self.report['steps'].append(dict(name=name, status='skipped', detail=why))
            print(f'[gpu_check] {name}: skipped ({why})', flush=True)

    def run(self, name: str, cmd: list[str], env: Optional[dict] = None, **extra: Any) -> Optional[dict]:
        timeout = self.timeout_for(name)
        if timeout < (10 if self.dry else 20):
            self.skip(name, f'out of the {self.args.budget_s:.0f} s budget')
            return None
        log = osp.join(self.out, 'logs', f'{name}.log')
        result = finish(start(cmd, log, env), timeout)
        return self.record(name, result, cmd, log, timeout, **extra)

    def write(self) -> None:
        from transvae.benchmark.gpu_check import render_markdown
        from transvae.engine.atomic_io import atomic_write_text
        self.report['wall_s'] = time.monotonic() - self.t0
        atomic_write_text(osp.join(self.out, 'gpu_check.json'), json.dumps(self.report, indent=1, default=str))
        atomic_write_text(osp.join(self.out, 'gpu_check.md'), render_markdown(self.report))


def _machine(dry: bool) -> dict[str, Any]:
    import torch
    m: dict[str, Any] = dict(platform=platform.platform(), processor=platform.processor(), cpu_count=os.cpu_count(),
                             python=platform.python_version(), torch=torch.__version__,
                             device='cpu' if dry else 'cuda')
    if not dry:  # nvidia-smi: no CUDA context in this process (the steps own the device)
        try:
            q = subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version',
                                '--format=csv,noheader,nounits'], capture_output=True, text=True, timeout=30)
            name, mem_mib, driver = [x.strip() for x in q.stdout.strip().splitlines()[0].split(',')]
            m.update(device_name=name, device_memory_bytes=int(float(mem_mib)) * 2**20, driver=driver)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            m.update(device_name=None, nvidia_smi='unavailable')
    return m


def _load_json(path: str) -> Optional[dict]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------------------------
# prep (in this process: no CUDA here, the steps own the device)
# ---------------------------------------------------------------------------------------------------------------------
def prepare(out: str, dry: bool) -> dict[str, Any]:
    """Inputs of the steps: the bundled photos, the DINOv2 weights file, random latents; on the CPU (dry run) the
    fp32 matmul peak that its MFU is taken against."""
    from transvae.benchmark.gpu_check import write_random_dinov2, write_random_latents
    from transvae.datasets.sample_photos import prepare_sample_photos
    res: dict[str, Any] = {}
    t = time.perf_counter()
    manifest = prepare_sample_photos(_photos_root())
    res['photos'] = dict(root=_photos_root(), counts=manifest.get('counts'), seconds=time.perf_counter() - t)
    t = time.perf_counter()
    recipe = osp.join(REPO, RECIPE_DINOV2)
    if not dry and osp.isfile(recipe):
        res['dinov2'] = dict(path=recipe, weights="the recipe's file")
    else:
        res['dinov2'] = write_random_dinov2(osp.join(out, 'assets', 'dinov2_random.safetensors'), DINOV2_ARCH,
                                            model_kwargs=TINY_DINOV2 if dry else None)
    res['dinov2']['seconds'] = time.perf_counter() - t
    res['latents'] = write_random_latents(osp.join(out, 'assets', 'latents_random'), latent_shape(dry),
                                          num=64 if dry else 1024, num_classes=1000)
    if dry:
        from transvae.benchmark.timing import matmul_peak
        res['cpu_matmul_peak'] = matmul_peak('cpu', sizes=(512, ), repeats=3)
    return res


# ---------------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------------
def _planner_cmd(py: str, config: str, batch: int, gpu_mem_gb: float, peak_tflops: Optional[float],
                 out_json: str) -> list[str]:
    """The run planner on the config the step trains, one GPU, the step's batch (not the recipe's global batch over
    one GPU), bf16, and the peak MFU is taken against (where known)."""
    cmd = [py, PLANNER, config, '--gpus', '1', '--batch-size', str(batch), '--gpu-mem-gb', f'{gpu_mem_gb:g}',
           '--amp', 'bf16', '--json', out_json]
    return cmd + (['--peak-tflops', f'{peak_tflops:g}'] if peak_tflops else [])


def _benchmark_cmd(py: str, dry: bool, out_json: str) -> list[str]:
    cmd = [py, osp.join(REPO, 'tools', 'analysis_tools', 'benchmark.py'), 'configs/_base_/models/transvae-t_f16d32.py',
           '--batch-sizes', '1', '--json', out_json]
    if dry:  # no peak-memory processes: each is a fresh interpreter (tens of seconds on a loaded 2-core CPU)
        opts = [f'model.arch.{k}={json.dumps(v)}' for k, v in TINY_ARCH.items()]
        return cmd + ['--device', 'cpu', '--resolutions', '16', '32', '48', '--repeats', '1', '--warmup', '0',
                      '--no-memory', '--no-peak', '--cfg-options', *opts]
    return cmd + ['--device', 'cuda', '--amp', 'bf16', '--resolutions', '256', '512', '1024', '--repeats', '5',
                  '--warmup', '2']


def _write_config(path: str, step: Any, dry: bool, note: str = '') -> None:
    from transvae.benchmark.gpu_check import config_text
    header = (f'{step.title}: written by tools/analysis_tools/gpu_check.py{" --dry-run" if dry else ""}.\n'
              f"The recipe {step.base_config} with the check's changes: " + '; '.join(step.notes) + '.' + note)
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as fh:
        fh.write(config_text(osp.join(REPO, step.base_config), step.overrides, header))


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
    os.makedirs(args.out_dir, exist_ok=True)
    ck = Check(args, command)
    out, dry, py = ck.out, ck.dry, ck.py
    from transvae.benchmark.gpu_check import benchmark_rows, bf16_peak, train_row

    # the configs first; the planners read them and run beside everything else (CPU only: no CUDA for them)
    recipe_dinov2 = osp.join(REPO, RECIPE_DINOV2)
    dinov2 = recipe_dinov2 if (not dry and osp.isfile(recipe_dinov2)) else osp.join(out, 'assets',
                                                                                     'dinov2_random.safetensors')
    plan = {s.name: s for s in make_plan(out, dry, dinov2) if s.name in args.steps}
    cfg_path = {name: osp.join(out, 'configs', f'{name}.py') for name in plan}
    for name, s in plan.items():
        _write_config(cfg_path[name], s, dry)
    gpu_mem_gb = args.gpu_mem_gb or (80.0 if dry else round(ck.report['machine'].get(
        'device_memory_bytes', 80 * 2**30) / 2**30, 1))
    table_peak = None if dry else bf16_peak(ck.report['machine'].get('device_name'), args.peak_tflops)['tflops']
    planners: dict[str, Any] = {}
    for name, s in plan.items():
        if not s.plan:
            continue
        if not osp.isfile(PLANNER):
            planners[name] = dict(status='planner unavailable',
                                  detail=f'{osp.relpath(PLANNER, REPO)} does not exist (yet)')
            continue
        pj = osp.join(out, 'planner', f'{name}.json')
        os.makedirs(osp.dirname(pj), exist_ok=True)
        log = osp.join(out, 'logs', f'planner_{name}.log')
        cmd = _planner_cmd(py, cfg_path[name], s.batch, gpu_mem_gb, table_peak, pj)
        planners[name] = dict(cmd=cmd, json=pj, log=log,
                              run=start(cmd, log, dict(OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')))
    t = time.monotonic()
    prep = prepare(out, dry)
    ck.report['prep'] = prep
    ck.report['steps'].append(dict(name='prep', status='ok', wall_s=time.monotonic() - t,
                                   detail='in the driver: photos, DINOv2 weights file, random latents'))
    meters: dict[str, Optional[dict]] = {}
    bench_json = osp.join(out, 'benchmark', 'benchmark.json')

    def run_step(name: str) -> None:
        if name == 'benchmark':
            os.makedirs(osp.dirname(bench_json), exist_ok=True)
            ck.run('benchmark', _benchmark_cmd(py, dry, bench_json))
            return
        s = plan[name]
        if name == 't_gan':
            if osp.isfile(s.overrides['load_from']):
                s.notes.append("initial weights: step t_stage1's checkpoint")
            else:  # step 1 left no checkpoint: the GAN stage from random weights
                s.overrides['load_from'] = None
                s.notes.append('no stage-1 checkpoint: random initial weights')
            _write_config(cfg_path[name], s, dry)
        extra = ['--work-dir', osp.join(out, 'runs', name), '--max-iters', str(s.iters)]
        if s.amp:
            extra += ['--amp', '--amp-dtype', 'bfloat16']
        if s.launcher == 'dist1':
            cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg_path[name], '1'] + extra
            # dry run: no pre-flight process (one interpreter less; tools/train.py checks the same config again)
            env = dict(PYTHON=py, PORT=str(_free_port()), PREFLIGHT='0' if dry else '1')
        else:
            cmd = [py, osp.join(REPO, 'tools', 'train.py'), cfg_path[name]] + extra
            env = {}
        ck.run(name, cmd, env)
        meters[name] = _load_json(meter_file(out, name))

    chains = [[n for n in chain if n in args.steps] for chain in CHAINS]
    chains = [c for c in chains if c]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for f in [pool.submit(lambda c=c: [run_step(n) for n in c]) for c in chains]:
            f.result()
    for name, p in planners.items():  # they ran beside the steps (CPU only, one thread each)
        if 'run' not in p:
            continue
        run = p.pop('run')
        timeout = min(PLANNER_TIMEOUT, ck.deadline - 5 - run.t0)
        rec = ck.record(f'planner_{name}', finish(run, timeout), p['cmd'], p['log'], timeout)
        data = _load_json(p['json']) if rec['status'] == 'ok' else None
        planners[name] = dict(data, status='ok') if data else dict(
            status=rec['status'] if rec['status'] != 'ok' else 'no JSON written',
            detail=' | '.join(rec.get('tail', [])[-3:]))
    ck.report['steps'].sort(key=lambda r: _ORDER.get(r['name'], len(_ORDER)))
    bench = _load_json(bench_json) if 'benchmark' in args.steps else None

    # the MFU reference and the rows
    device_name = ck.report['machine'].get('device_name') or next(
        (m.get('device_name') for m in meters.values() if m and m.get('device_name')), None)
    if dry:
        cpu_peak = (prep.get('cpu_matmul_peak') or {}).get('gflops')
        peak = bf16_peak(None, args.peak_tflops, cpu_peak / 1e3 if cpu_peak else None,
                         'fp32 matmul peak of this CPU (512², measured in prep; dry run)')
    else:
        mp = (bench or {}).get('matmul_peak') or {}
        peak = bf16_peak(device_name, args.peak_tflops, mp.get('gflops', 0) / 1e3 or None,
                         f"bf16 matmul peak measured by the benchmark step ({mp.get('dtype')})")
    ck.report['peak'] = peak
    if bench and bench.get('matmul_peak'):
        ck.report['matmul_peak_measured'] = bench['matmul_peak']
    ck.report['train_rows'] = [train_row(s, meters.get(name), peak, planners.get(name) if s.plan else None)
                               for name, s in sorted(plan.items(), key=lambda kv: _ORDER[kv[0]])]
    if bench:
        ck.report['benchmark_rows'] = benchmark_rows(bench, peak.get('tflops'))
        ck.report['benchmark_reference'] = (bench.get('reference') or {}).get('name')
    ck.write()
    bad = [s['name'] for s in ck.report['steps'] if s['status'] != 'ok']
    print(f"[gpu_check] report: {osp.join(out, 'gpu_check.md')} ({ck.report['wall_s']:.0f} s)"
          + (f"; not ok: {', '.join(bad)}" if bad else ''), flush=True)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
