"""Seconds per training iteration of study variants, measured interleaved in one process, and quality on that axis.

On a shared machine the wall-clock a training run logs measures the load as much as the model. Quality after ``k``
iterations of a fixed-iteration run does not depend on the load, so the time-to-quality figure puts quality(k) at
``k × s/it``, where ``s/it`` of every variant is measured here in ONE process, the variants' steps interleaved
(A, B, A, B, ...; the median over the repeats), so that load drift hits all of them alike.

A step is the runner's training step of the variant's study config: the config is built from the very command line
the study driver trains with (:func:`.run.train_command`, parsed by :mod:`transvae.apis.train_cli`, the code of
``tools/train.py``), the model, its optimizer wrapper and one batch of the training dataloader through the registries,
and the step is
``model.train_step(batch, optim_wrapper)``: data preprocessing, forward, the loss with its perceptual term, backward
and the optimizer update. Data loading (the same loader for every variant) is left out.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import os.path as osp
import platform
import re
import shlex
import statistics
import time
from typing import Any, Callable, Optional, Sequence

from .run import RunOptions, train_command, work_dir_of, write_overlay
from .study import Study, Variant

#: File the measurement is stored in under a study root.
STEP_TIMES = 'step_times.json'


@dataclasses.dataclass
class StepTimes:
    """Per-iteration training seconds of several variants, measured interleaved in one process.

    Attributes:
        seconds: ``label -> [seconds of each timed step]`` (in measurement order; repeat ``i`` of every label ran
            back to back).
        params_M: ``label -> trainable parameters (millions) of the encoder + decoder``.
        batch_size / resolution: the training batch ``(batch_size, 3, resolution, resolution)``.
        threads: ``torch.get_num_threads()`` during the measurement.
        warmup: untimed steps of every variant before the repeats.
        loadavg_before / loadavg_after: ``os.getloadavg()`` around the measurement.
        other_cores: CPU cores busy with other processes during the timed steps, on average (``/proc/stat`` busy
            time minus this process's CPU time, over the wall time; ``None`` where ``/proc/stat`` is missing). The
            load average lags by minutes; this is what the steps competed with.
        machine: platform and CPU count.
        command: the command that made it.
    """
    seconds: dict[str, list[float]]
    params_M: dict[str, float] = dataclasses.field(default_factory=dict)
    batch_size: int = 0
    resolution: int = 0
    threads: int = 0
    warmup: int = 0
    loadavg_before: list[float] = dataclasses.field(default_factory=list)
    loadavg_after: list[float] = dataclasses.field(default_factory=list)
    other_cores: Optional[float] = None
    machine: str = ''
    command: str = ''

    def median(self, label: str) -> float:
        """Median seconds per iteration of ``label``."""
        if not self.seconds.get(label):
            raise KeyError(f'no step times for {label!r}; measured: {sorted(self.seconds)}')
        return statistics.median(self.seconds[label])

    def medians(self) -> dict[str, float]:
        return {k: self.median(k) for k in self.seconds}

    def ratio(self, a: str, b: str) -> float:
        """``median(a) / median(b)``: how many times longer an iteration of ``a`` takes."""
        return self.median(a) / self.median(b)

    def pair_ratios(self, a: str, b: str) -> list[float]:
        """``a / b`` of each repeat (the two steps ran back to back, so each ratio saw nearly the same load)."""
        return [x / y for x, y in zip(self.seconds[a], self.seconds[b])]

    def summary(self) -> str:
        """One line per variant and the ratios against the first, with the spread of the per-repeat ratios."""
        labels = list(self.seconds)
        lines = [f'{k}: {self.median(k):.4f} s/it (median of {len(self.seconds[k])}; min {min(self.seconds[k]):.4f}, '
                 f'max {max(self.seconds[k]):.4f}), {self.params_M.get(k, math.nan):.3f}M parameters' for k in labels]
        for b in labels[1:]:
            pr = self.pair_ratios(labels[0], b)
            lines.append(f'ratio {labels[0]} / {b}: {self.ratio(labels[0], b):.3f} (per-repeat ratios: median '
                         f'{statistics.median(pr):.3f}, min {min(pr):.3f}, max {max(pr):.3f})')
        others = 'n/a' if self.other_cores is None else f'{self.other_cores:.2f}'
        lines.append(f'batch {self.batch_size} x 3 x {self.resolution}², {self.threads} thread(s), {self.warmup} '
                     f'warm-up steps each; other processes used {others} cores meanwhile (load average '
                     f'{self.loadavg_before} -> {self.loadavg_after}); {self.machine}')
        return '\n'.join(lines)

    def save(self, path: str) -> str:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(dataclasses.asdict(self), medians=self.medians()), f, indent=1)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str) -> 'StepTimes':
        with open(path) as f:
            d = json.load(f)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _busy_cpu_seconds() -> Optional[float]:
    """CPU seconds all processes spent busy since boot (``/proc/stat``), or ``None`` off Linux."""
    try:
        with open('/proc/stat') as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf('SC_CLK_TCK')


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def recorded_command(work_dir: str) -> Optional[list[str]]:
    """The ``tools/train.py`` arguments a work dir was trained with: ``done.json``'s ``command``, else the last
    command line in ``driver.log``; ``None`` when neither is there."""
    from .run import read_done
    line = (read_done(work_dir) or {}).get('command')
    if not line:
        try:
            with open(osp.join(work_dir, 'driver.log')) as f:
                heads = [ln for ln in f if re.match(r'# \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ', ln)]
        except OSError:
            return None
        if not heads:
            return None
        line = heads[-1].split(' ', 3)[3]
    cmd = shlex.split(line)
    if len(cmd) > 4 and cmd[1].endswith('dist_train.sh'):
        return [cmd[2], *cmd[4:]]  # bash dist_train.sh CONFIG GPUS ARGS...
    return cmd[2:] if len(cmd) > 2 and cmd[1].endswith('train.py') else None


def variant_config(variant: Variant, root: str, opts: RunOptions, seed: int = 0, recorded: bool = True) -> Any:
    """The mmengine ``Config`` that ``variant`` (seed ``seed``) is trained with.

    With ``recorded`` and a run of that seed on disk, its own recorded command line (:func:`recorded_command`), so
    the step timed is the one that made the curve; otherwise the command the driver would run with ``opts``. Either
    is parsed and built by ``tools/train.py``'s own code (:mod:`transvae.apis.train_cli`: preset, shortcut flags,
    ``--cfg-options``).
    """
    from transvae.apis.train_cli import build_config, parse_args
    args = recorded_command(work_dir_of(root, variant.label, seed)) if recorded else None
    if args is not None:
        try:
            return build_config(parse_args(args))
        except SystemExit:  # a flag tools/train.py no longer has
            print(f'[speed] {variant.label}: the recorded command no longer parses; using the driver\'s options',
                  flush=True)
    single = dataclasses.replace(opts, gpus=1, launcher='none')
    cmd = train_command(write_overlay(variant, root), work_dir_of(root, variant.label, seed), seed, single, variant)
    return build_config(parse_args(cmd[2:]))


def build_train_step(cfg: Any, seed: int = 0) -> tuple[Callable[[], Any], dict]:
    """The runner's training step of ``cfg`` on one fixed batch of its training dataloader.

    Args:
        cfg: a training config (``model``, ``optim_wrapper``, ``train_dataloader``).
        seed: seeds the weights and the dataloader.

    Returns:
        ``(step, info)``: ``step()`` runs ``model.train_step(batch, optim_wrapper)`` (preprocess, forward, loss,
        backward, optimizer update) and returns its log variables; ``info`` holds ``params_M`` (encoder + decoder,
        trainable), ``batch_size`` and ``resolution`` of the batch, and the ``model`` and ``optim_wrapper``.
    """
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from transvae.registry import MODELS
    from transvae.apis import register_all_modules
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)  # weights as built: the step time does not depend on them
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
    batch = next(iter(loader))
    inputs = batch['inputs']
    first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs[0]
    parts = [m for m in (getattr(model, 'encoder', None), getattr(model, 'decoder', None)) if m is not None] or [model]
    params = sum(p.numel() for m in parts for p in m.parameters() if p.requires_grad)
    info = dict(params_M=params / 1e6, batch_size=len(inputs), resolution=int(first.shape[-1]), model=model,
                optim_wrapper=optim_wrapper)

    def step() -> Any:
        return model.train_step(batch, optim_wrapper)

    return step, info


def measure_step_times(study: Study, root: str, opts: RunOptions, repeats: int = 10, warmup: int = 2,
                       threads: Optional[int] = None, labels: Optional[Sequence[str]] = None, seed: int = 0,
                       command: str = '', recorded: bool = True) -> StepTimes:
    """Seconds per training iteration of a study's variants, interleaved repeat by repeat in this process.

    Args:
        study: the study; every selected variant is built from the command its run of ``seed`` recorded, or as the
            driver would train it with ``opts`` (batch size, preset, ``--cfg-options``): :func:`variant_config`.
        root: the study root (the overlay configs are written to ``root/_configs``).
        opts: the study's run options.
        repeats: timed steps of every variant (the median is reported).
        warmup: untimed steps of every variant first.
        threads: ``torch.set_num_threads`` (default: leave it).
        labels: the variants to measure (default: all).
        seed: weights / dataloader seed, and the run whose recorded command is used.
        command: recorded with the result.
        recorded: use the runs' recorded commands where there are runs (else always ``opts``).
    """
    import torch

    from transvae.benchmark.timing import interleaved
    from transvae.utils.allocator import tune_cpu_allocator
    if repeats < 1 or warmup < 0:
        raise ValueError(f'repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}')
    if threads:
        torch.set_num_threads(threads)
    if not torch.cuda.is_available():
        tune_cpu_allocator()  # as tools/train.py does
    steps, infos = {}, {}
    for v in study.select(labels):
        steps[v.label], infos[v.label] = build_train_step(variant_config(v, root, opts, seed, recorded), seed)
    shapes = {(i['batch_size'], i['resolution']) for i in infos.values()}
    if len(shapes) != 1:
        raise ValueError(f'the variants train on different batches {shapes}: their step times do not compare')
    (batch_size, resolution), = shapes
    load0 = [round(x, 2) for x in os.getloadavg()]
    busy0, own0, t0 = _busy_cpu_seconds(), _own_cpu_seconds(), time.time()
    seconds = interleaved(steps, repeats, warmup, 'cpu')
    busy1, own1, wall = _busy_cpu_seconds(), _own_cpu_seconds(), time.time() - t0
    others = None if busy0 is None or busy1 is None else max(busy1 - busy0 - (own1 - own0), 0.0) / wall
    print(f'[speed] {len(steps)} variants x ({warmup} + {repeats}) steps in {wall:.0f} s', flush=True)
    return StepTimes(seconds={k: [round(t, 5) for t in v] for k, v in seconds.items()},
                     params_M={k: round(i['params_M'], 4) for k, i in infos.items()}, batch_size=batch_size,
                     resolution=resolution, threads=torch.get_num_threads(), warmup=warmup, loadavg_before=load0,
                     loadavg_after=[round(x, 2) for x in os.getloadavg()],
                     other_cores=None if others is None else round(others, 3),
                     machine=f'{platform.machine()} {platform.processor() or ""} {os.cpu_count()} CPUs, '
                     f'torch {torch.__version__}'.replace('  ', ' '), command=command)


# ---------------------------------------------------------------------------------------------------------------------
# quality on the time axis
# ---------------------------------------------------------------------------------------------------------------------
def value_at_step(rows: list[dict], metric: str, step: float) -> float:
    """A validation metric at ``step`` (linear between the logged validation steps; NaN outside them)."""
    pts = sorted((int(r['step']), float(r[metric])) for r in rows if metric in r and r[metric] is not None)
    for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
        if s0 <= step <= s1:
            return v0 if s1 == s0 else v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    return pts[0][1] if pts and pts[0][0] == step else math.nan


def quality_vs_time(val_rows: list[dict], metric: str, sec_per_iter: float) -> list[tuple[float, float]]:
    """``[(k × sec_per_iter, metric at validation step k)]`` for the validation steps ``k > 0`` that logged it."""
    return [(int(r['step']) * sec_per_iter, float(r[metric])) for r in val_rows
            if int(r['step']) > 0 and metric in r and r[metric] is not None]


def equal_time(runs: dict[str, dict[int, dict]], step_seconds: dict[str, float], metric: str
               ) -> tuple[float, dict[str, dict]]:
    """Every variant's ``metric`` at the same training time: the last time all of them reached, i.e. the smallest
    ``(last validation step) × s/it`` over the variants (for equal-length runs: when the fastest one finished).

    Returns:
        ``(seconds, {label: {'iters': iterations at that time, 'values': [per seed]}})``.
    """
    last = {}
    for label, seeds in runs.items():
        steps = [max((int(r['step']) for r in run['val'] if metric in r), default=0) for run in seeds.values()]
        if label in step_seconds and steps and min(steps) > 0:
            last[label] = min(steps) * step_seconds[label]
    if not last:
        return math.nan, {}
    horizon = min(last.values())
    out = {}
    for label in last:
        k = horizon / step_seconds[label]
        out[label] = dict(iters=k, values=[value_at_step(run['val'], metric, k) for run in runs[label].values()])
    return horizon, out


def time_to_reach(seeds: dict[int, dict], metric: str, target: float, sec_per_iter: float,
                  lower_is_better: bool) -> tuple[float, bool]:
    """When the seed-mean validation curve of one variant first reaches ``target``: ``(seconds, at_first)``,
    linear between validation steps, on the ``k × sec_per_iter`` axis. ``at_first`` is True when the first
    validation already reached it (the time is then an upper bound); ``(nan, False)`` when it never does."""
    from .logs import curve
    pts = [(s, st.mean) for s, st in curve(seeds, metric) if s > 0 and st.n == len(seeds)]
    better = (lambda y: y <= target) if lower_is_better else (lambda y: y >= target)
    for i, (s, y) in enumerate(pts):
        if better(y):
            if i == 0:
                return s * sec_per_iter, True
            s0, y0 = pts[i - 1]
            return (s0 + (s - s0) * (target - y0) / (y - y0)) * sec_per_iter, False
    return math.nan, False


def time_to_quality_markdown(study: Study, runs: dict[str, dict[int, dict]], st: StepTimes,
                             metrics: Sequence[str] = ('psnr', 'lpips', 'vgg/rec_loss')) -> str:
    """The speed measurement, each variant's quality at equal training time and at its last validation, and the
    logged (load-dependent) seconds per iteration of every run, as Markdown."""
    from .logs import METRICS, final_stats, num, train_seconds
    labels = [v.label for v in study.variants if v.label in st.seconds]
    first = labels[0] if labels else None
    out = ['| variant | parameters (enc + dec) | s/it (median) | min - max | ratio to ' + str(first) + ' |',
           '|---|---|---|---|---|']
    for k in labels:
        out.append(f'| {k} | {st.params_M.get(k, math.nan):.3f}M | {st.median(k):.4f} | {min(st.seconds[k]):.4f} - '
                   f'{max(st.seconds[k]):.4f} | {st.ratio(k, first):.3f} |')
    out.append(f'\n{len(st.seconds[first]) if first else 0} interleaved repeats after {st.warmup} warm-up steps; '
               f'batch {st.batch_size} at {st.resolution}², {st.threads} thread(s); other processes used '
               f'{"n/a" if st.other_cores is None else f"{st.other_cores:.2f}"} cores meanwhile (load average '
               f'{st.loadavg_before} -> {st.loadavg_after}); {st.machine}.\n')
    meds = {k: st.median(k) for k in labels}
    out += ['| metric | equal time (min) | ' + ' | '.join(f'{k}: iterations, value (seeds)' for k in labels) + ' |',
            '|---|---|' + '---|' * len(labels)]
    for m in metrics:
        horizon, at = equal_time({k: runs.get(k, {}) for k in labels}, meds, m)
        if not at:
            continue
        cells = []
        for k in labels:
            a = at.get(k)
            vals = [x for x in (a['values'] if a else []) if math.isfinite(x)]
            if not a:
                cells.append('n/a')
                continue
            seeds = ', '.join(f'{x:.4f}' for x in vals)
            cells.append(f'{a["iters"]:.0f}, ' + (f'{sum(vals) / len(vals):.4f} ({seeds})' if vals else 'n/a'))
        out.append(f'| {m} | {horizon / 60:.2f} | ' + ' | '.join(cells) + ' |')
    out += ['', '| metric | target: the worst final seed mean | ' + ' | '.join(f'{k}: time to reach it (min)'
                                                                   for k in labels) + ' |',
            '|---|---|' + '---|' * len(labels)]
    for m in metrics:
        lower = METRICS.get(m, True)
        finals = {k: final_stats(runs.get(k, {}), m, finished_only=False).mean for k in labels}
        finals = {k: x for k, x in finals.items() if math.isfinite(x)}
        if len(finals) < 2:
            continue
        worst = max(finals, key=finals.get) if lower else min(finals, key=finals.get)
        cells = []
        for k in labels:
            t, first = time_to_reach(runs.get(k, {}), m, finals[worst], meds[k], lower)
            cells.append('not reached' if not math.isfinite(t) else f'{"≤ " if first else ""}{t / 60:.2f}')
        out.append(f'| {m} | {finals[worst]:.4f} ({worst}) | ' + ' | '.join(cells) + ' |')
    out += ['', '| run | last validation step | ' + ' | '.join(metrics)
            + ' | logged s/it (under load) | load avg at end |',
            '|---|---|' + '---|' * len(metrics) + '---|---|']
    for k in labels:
        for seed, run in sorted(runs.get(k, {}).items()):
            val = [r for r in run['val'] if int(r['step']) > 0]
            cum = train_seconds(run['train'])
            logged = cum[-1][1] / cum[-1][0] if cum and cum[-1][0] else math.nan
            la = (run.get('done') or {}).get('loadavg_end') or 'n/a'
            last = val[-1] if val else {}
            out.append(f'| {k} s{seed} | {last.get("step", "n/a")} | '
                       + ' | '.join(f'{num(last.get(m)):.4f}' for m in metrics) + f' | {logged:.3f} | {la} |')
    return '\n'.join(out) + '\n'
