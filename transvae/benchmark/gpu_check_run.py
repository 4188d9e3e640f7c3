"""Running the GPU check: each step (and each run-planner call) in its own process group under its own timeout, a
failed step recorded and the next one run, the report (``gpu_check.json`` / ``gpu_check.md``) rewritten after every
step. The steps and their command lines are :mod:`transvae.benchmark.gpu_check_steps`; the rows and the Markdown are
:mod:`transvae.benchmark.gpu_check`. This process never opens a CUDA context: the steps own the device.
"""
from __future__ import annotations

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
from typing import Any, Callable, Optional

from transvae.benchmark.gpu_check import (benchmark_rows, bf16_peak, render_markdown, train_row, write_random_dinov2,
                                          write_random_latents)
from transvae.benchmark.gpu_check_steps import (CHAINS, DINOV2_ARCH, DRY_TIMEOUTS, GPU_TIMEOUTS, PLANNER_TIMEOUT,
                                                CheckTools, RECIPE_DINOV2, REPO, STEP_INPUTS, STEP_ORDER,
                                                TINY_DINOV2,
                                                benchmark_cmd, latent_shape, make_plan, meter_file, photos_root,
                                                planner_cmd, train_cmd, write_step_config)
from transvae.engine.atomic_io import atomic_write_text

__all__ = ['Running', 'start', 'finish', 'Check', 'prepare', 'run_check']


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


def _load_json(path: str) -> Optional[dict]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


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


class Check:
    """The check's state: its folder, budget, step records and the report written after every step.

    Args:
        out: the (new or empty) report folder.
        dry: ``--dry-run`` (tiny sizes on the CPU).
        budget_s: wall-clock budget of the whole check; a step gets at most what is left.
        command: the command line, for the report.
    """

    def __init__(self, out: str, dry: bool, budget_s: float, command: str) -> None:
        self.out = osp.abspath(out)
        self.dry = dry
        self.budget_s = budget_s
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget_s
        self.timeouts = DRY_TIMEOUTS if dry else GPU_TIMEOUTS
        self.py = sys.executable
        self.lock = threading.Lock()
        self.report: dict[str, Any] = dict(
            dry_run=dry, command=command, budget_s=budget_s,
            started_utc=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC'),
            machine=_machine(dry), steps=[], train_rows=[], benchmark_rows=[], peak={})

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
            self.skip(name, f'out of the {self.budget_s:.0f} s budget')
            return None
        log = osp.join(self.out, 'logs', f'{name}.log')
        result = finish(start(cmd, log, env), timeout)
        return self.record(name, result, cmd, log, timeout, **extra)

    def write(self) -> None:
        self.report['wall_s'] = time.monotonic() - self.t0
        atomic_write_text(osp.join(self.out, 'gpu_check.json'), json.dumps(self.report, indent=1, default=str))
        atomic_write_text(osp.join(self.out, 'gpu_check.md'), render_markdown(self.report))


def prepare(out: str, dry: bool, ready: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """Inputs of the steps: random latents, the bundled photos, the DINOv2 weights file (in that order; ``ready``
    is called with each key of :data:`~transvae.benchmark.gpu_check_steps.STEP_INPUTS` once it is written); on the
    CPU (dry run) also the fp32 matmul peak that its MFU is taken against. Runs in the driver (no CUDA here)."""
    from transvae.datasets.sample_photos import prepare_sample_photos
    ready = ready or (lambda key: None)
    res: dict[str, Any] = {}
    res['latents'] = write_random_latents(osp.join(out, 'assets', 'latents_random'), latent_shape(dry),
                                          num=64 if dry else 1024, num_classes=1000)
    ready('latents')
    t = time.perf_counter()
    manifest = prepare_sample_photos(photos_root())
    res['photos'] = dict(root=photos_root(), counts=manifest.get('counts'), seconds=time.perf_counter() - t)
    ready('photos')
    t = time.perf_counter()
    recipe = osp.join(REPO, RECIPE_DINOV2)
    if not dry and osp.isfile(recipe):
        res['dinov2'] = dict(path=recipe, weights="the recipe's file")
    else:
        res['dinov2'] = write_random_dinov2(osp.join(out, 'assets', 'dinov2_random.safetensors'), DINOV2_ARCH,
                                            model_kwargs=TINY_DINOV2 if dry else None)
    res['dinov2']['seconds'] = time.perf_counter() - t
    ready('dinov2')
    if dry:
        from transvae.benchmark.timing import matmul_peak
        res['cpu_matmul_peak'] = matmul_peak('cpu', sizes=(512, ), repeats=3)
    return res


class _Prep(threading.Thread):
    """:func:`prepare` beside the steps: :meth:`wait` blocks until the inputs a step reads are written (or prep
    failed: then it returns False and :attr:`error` holds the exception)."""

    def __init__(self, ck: Check) -> None:
        super().__init__(daemon=True)
        self.ck = ck
        self.events = {key: threading.Event() for key in ('latents', 'photos', 'dinov2')}
        self.result: dict[str, Any] = {}
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        t = time.monotonic()
        try:
            self.result = prepare(self.ck.out, self.ck.dry, lambda key: self.events[key].set())
        except BaseException as e:  # handed to the main thread, which raises it
            self.error = e
        finally:
            for ev in self.events.values():
                ev.set()
        if self.error is None:
            with self.ck.lock:
                self.ck.report['prep'] = self.result
                self.ck.report['steps'].append(dict(name='prep', status='ok', wall_s=time.monotonic() - t,
                                                    detail='in the driver: photos, DINOv2 weights file, random '
                                                           'latents'))

    def wait(self, step: str) -> bool:
        for key in STEP_INPUTS[step]:
            self.events[key].wait()
        return self.error is None


def _start_planners(ck: Check, tools: CheckTools, plan: dict, cfg_path: dict[str, str], gpu_mem_gb: float,
                    table_peak: Optional[float]) -> dict[str, dict]:
    """One run-planner process per planned step, started now (CPU only, one thread each) to run beside the steps."""
    planners: dict[str, dict] = {}
    for name, s in plan.items():
        if not s.plan:
            continue
        if not osp.isfile(tools.planner):
            planners[name] = dict(status='planner unavailable',
                                  detail=f'{osp.relpath(tools.planner, REPO)} does not exist (yet)')
            continue
        pj = osp.join(ck.out, 'planner', f'{name}.json')
        os.makedirs(osp.dirname(pj), exist_ok=True)
        log = osp.join(ck.out, 'logs', f'planner_{name}.log')
        cmd = planner_cmd(ck.py, tools, cfg_path[name], s.batch, gpu_mem_gb, table_peak, pj)
        planners[name] = dict(cmd=cmd, json=pj, log=log,
                              run=start(cmd, log, dict(OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')))
    return planners


def _collect_planners(ck: Check, planners: dict[str, dict]) -> None:
    """Wait for the planner processes (each bounded by :data:`PLANNER_TIMEOUT` from its start and by the budget),
    record them, and replace each entry by the planner's JSON (or its status)."""
    for name, p in planners.items():
        if 'run' not in p:
            continue
        run = p.pop('run')
        timeout = min(PLANNER_TIMEOUT, ck.deadline - 5 - run.t0)
        rec = ck.record(f'planner_{name}', finish(run, timeout), p['cmd'], p['log'], timeout)
        data = _load_json(p['json']) if rec['status'] == 'ok' else None
        planners[name] = dict(data, status='ok') if data else dict(
            status=rec['status'] if rec['status'] != 'ok' else 'no JSON written',
            detail=' | '.join(rec.get('tail', [])[-3:]))


def run_check(out: str, dry: bool, steps: list[str], budget_s: float, jobs: int, command: str, tools: CheckTools,
              peak_tflops: Optional[float] = None, gpu_mem_gb: Optional[float] = None) -> int:
    """The whole check into the new or empty folder ``out``: ``steps`` (names of
    :data:`~transvae.benchmark.gpu_check_steps.STEPS`) run by the entry points ``tools``, ``jobs`` step chains at
    once.

    Returns:
        the exit status: 1 when a step failed, timed out or was skipped, else 0.
    """
    os.makedirs(out, exist_ok=True)
    ck = Check(out, dry, budget_s, command)
    out, py = ck.out, ck.py

    # the configs first; the planners read them and run beside everything else (CPU only: no CUDA for them)
    recipe_dinov2 = osp.join(REPO, RECIPE_DINOV2)
    dinov2 = recipe_dinov2 if (not dry and osp.isfile(recipe_dinov2)) else osp.join(out, 'assets',
                                                                                     'dinov2_random.safetensors')
    plan = {s.name: s for s in make_plan(out, dry, dinov2) if s.name in steps}
    cfg_path = {name: osp.join(out, 'configs', f'{name}.py') for name in plan}
    for name, s in plan.items():
        write_step_config(cfg_path[name], s, dry)
    gpu_mem_gb = gpu_mem_gb or (80.0 if dry else round(ck.report['machine'].get(
        'device_memory_bytes', 80 * 2**30) / 2**30, 1))
    table_peak = None if dry else bf16_peak(ck.report['machine'].get('device_name'), peak_tflops)['tflops']
    planners = _start_planners(ck, tools, plan, cfg_path, gpu_mem_gb, table_peak)
    prep = _Prep(ck)
    prep.start()
    meters: dict[str, Optional[dict]] = {}
    bench_json = osp.join(out, 'benchmark', 'benchmark.json')

    def run_step(name: str) -> None:
        if not prep.wait(name):
            ck.skip(name, 'preparing its inputs failed')
            return
        if name == 'benchmark':
            os.makedirs(osp.dirname(bench_json), exist_ok=True)
            ck.run('benchmark', benchmark_cmd(py, tools, dry, bench_json))
            return
        s = plan[name]
        if name == 't_gan':
            if osp.isfile(s.overrides['load_from']):
                s.notes.append("initial weights: step t_stage1's checkpoint")
            else:  # step 1 left no checkpoint: the GAN stage from random weights
                s.overrides['load_from'] = None
                s.notes.append('no stage-1 checkpoint: random initial weights')
            write_step_config(cfg_path[name], s, dry)
        cmd, env = train_cmd(py, tools, s, cfg_path[name], osp.join(out, 'runs', name), dry, _free_port())
        ck.run(name, cmd, env)
        meters[name] = _load_json(meter_file(out, name))

    chains = [[n for n in chain if n in steps] for chain in CHAINS]
    chains = [c for c in chains if c]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for f in [pool.submit(lambda c=c: [run_step(n) for n in c]) for c in chains]:
            f.result()
    prep.join()
    if prep.error is not None:
        raise prep.error
    _collect_planners(ck, planners)
    ck.report['steps'].sort(key=lambda r: STEP_ORDER.get(r['name'], len(STEP_ORDER)))
    bench = _load_json(bench_json) if 'benchmark' in steps else None

    # the MFU reference and the rows
    device_name = ck.report['machine'].get('device_name') or next(
        (m.get('device_name') for m in meters.values() if m and m.get('device_name')), None)
    if dry:
        cpu_peak = (prep.result.get('cpu_matmul_peak') or {}).get('gflops')
        peak = bf16_peak(None, peak_tflops, cpu_peak / 1e3 if cpu_peak else None,
                         'fp32 matmul peak of this CPU (512², measured in prep; dry run)')
    else:
        mp = (bench or {}).get('matmul_peak') or {}
        peak = bf16_peak(device_name, peak_tflops, mp.get('gflops', 0) / 1e3 or None,
                         f"bf16 matmul peak measured by the benchmark step ({mp.get('dtype')})")
    ck.report['peak'] = peak
    if bench and bench.get('matmul_peak'):
        ck.report['matmul_peak_measured'] = bench['matmul_peak']
    ck.report['train_rows'] = [train_row(s, meters.get(name), peak, planners.get(name) if s.plan else None)
                               for name, s in sorted(plan.items(), key=lambda kv: STEP_ORDER[kv[0]])]
    if bench:
        ck.report['benchmark_rows'] = benchmark_rows(bench, peak.get('tflops'))
        ck.report['benchmark_reference'] = (bench.get('reference') or {}).get('name')
    ck.write()
    bad = [s['name'] for s in ck.report['steps'] if s['status'] != 'ok']
    print(f"[gpu_check] report: {osp.join(out, 'gpu_check.md')} ({ck.report['wall_s']:.0f} s)"
          + (f"; not ok: {', '.join(bad)}" if bad else ''), flush=True)
    return 1 if bad else 0
