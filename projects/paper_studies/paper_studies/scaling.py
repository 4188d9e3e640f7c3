"""Fig. 5's numbers: final held-out quality per (model, seed), its slope against log10(parameters) per family, and
the claim "TransVAE improves more with size than CNN-VAE" judged by the paired bootstrap.

A run is a work dir ``ROOT/<family>_<size>/seed_S`` of ``tools/reproduce/train_all_scales.sh`` (``<family>``: the
name up to the first ``_``: ``transvae``, ``cnn``, ``vit``, ``swin``). Parameters (encoder + decoder) and the training
FLOPs come from the config the run dumped (what was trained): :func:`~transvae.utils.complexity.count_params_meta`
and the benchmark's FLOP counter (:func:`~transvae.benchmark.step_trace.trace_training_step` of one step of the
config's batch at its crop size, times the iterations run).

A family's trend is a least-squares slope of a metric against ``log10(parameters)`` over its sizes. No trend is
stated for a family whose runs' parameter counts are not all distinct (:class:`TrendRefused`): a preset that trains
every size as the same model gives identical counts, and a "trend" through them would be noise.

The claim verdict (:func:`slope_claim`): per seed ``s`` and held-out photo ``p`` the slope of each family's claim
metric over its sizes (``per_photo.json`` of every size for that seed), ``d[s, p] = slope_a - slope_b``, and the
two-level bootstrap of :mod:`.bootstrap` on ``d`` (``a`` improves more with size: ``d < 0`` for a lower-is-better
metric, i.e. the claim ``slope_a < slope_b``).
"""
from __future__ import annotations

import glob
import math
import os.path as osp
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .bootstrap import IntervalJudgement, judge_paired
from .logs import CLAIM_METRIC, collect, num, per_photo_values
from .study import MISSING, Variant

#: The metrics of the figure: (key, axis label, lower is better).
SCALING_METRICS = (('vgg/rec_loss', 'final held-out L1 + LPIPS-vgg', True), ('psnr', 'final held-out PSNR (dB)', False),
                   ('lpips', 'final held-out LPIPS-alex', True))


class TrendRefused(ValueError):
    """A family's runs do not differ in parameter count: no trend can be read from them."""


@dataclass
class ScalingRun:
    """One finished (model, seed) of a scaling family.

    Attributes:
        family / name / seed: ``transvae`` / ``transvae_x2`` / 0.
        params: encoder + decoder parameters of the trained config.
        train_flops: FLOPs of the whole run (step FLOPs x iterations; NaN when not counted).
        step: the final validation step.
        final: the final validation value of each logged metric.
        per_photo: ``per_photo.json`` record (``None`` for runs from before it).
    """
    family: str
    name: str
    seed: int
    params: float
    train_flops: float
    step: int
    final: dict[str, float]
    per_photo: Optional[dict] = field(default=None, repr=False)


def family_of(name: str) -> str:
    """``'transvae_x05'`` -> ``'transvae'``."""
    return name.split('_', 1)[0]


def size_of(name: str) -> str:
    """``'transvae_x05'`` -> ``'x05'``; ``'cnn_tiny'`` -> ``'tiny'``."""
    return name.split('_', 1)[-1]


def dumped_config(work_dir: str) -> Optional[str]:
    """The config a run dumped (``seed_S/<name>.py``)."""
    found = sorted(glob.glob(osp.join(work_dir, '*.py')))
    return found[0] if found else None


def train_resolution(cfg: Any) -> int:
    """The crop size of the config's train pipeline (the last transform declaring a resolution key)."""
    from transvae.datasets.transforms.resolution import resolution_keys
    ds = cfg.get('train_dataloader', {}).get('dataset', {})
    while isinstance(ds, Mapping) and 'dataset' in ds and 'pipeline' not in ds:
        ds = ds['dataset']
    size = None
    for t in (ds.get('pipeline', None) or []) if isinstance(ds, Mapping) else []:
        for key in resolution_keys(t):
            if key in t:
                v = t[key]
                size = int(v if isinstance(v, (int, float)) else max(v))
    if size is None:
        raise ValueError(f'{cfg.filename}: no crop size in the train pipeline')
    return size


def params_of_config(config: str) -> float:
    """Encoder + decoder parameters of a config (meta device)."""
    from mmengine.config import Config

    from transvae.apis import register_all_modules
    from transvae.utils.complexity import count_params_meta
    register_all_modules()
    enc, dec = count_params_meta(Config.fromfile(config))
    return float(enc + dec)


def step_flops_of_config(config: str) -> float:
    """FLOPs of one training step of the config (its batch at its crop size; model, losses and optimizer) by the
    benchmark's counter, traced on fake tensors."""
    from mmengine.config import Config

    from transvae.apis import register_all_modules
    from transvae.benchmark.step_trace import build_training_setup, trace_training_step
    register_all_modules()
    cfg = Config.fromfile(config)
    setup = build_training_setup(cfg, int(cfg.train_dataloader.batch_size), train_resolution(cfg))
    return float(trace_training_step(setup).flops)


def collect_scaling(root: str, params_from: str = 'workdir', flops: bool = True,
                    exp_dirs: Sequence[str] = ()) -> list[ScalingRun]:
    """Every finished (model, seed) under ``root`` with a final validation: parameters from the dumped config
    (``params_from='config'``: from the first ``<exp_dir>/<name>.py`` of ``exp_dirs``), training FLOPs counted once
    per model (``flops``)."""
    runs: list[ScalingRun] = []
    names = sorted(osp.basename(osp.dirname(p)) for p in glob.glob(osp.join(root, '*', 'seed_*')))
    cache: dict[str, tuple[float, float]] = {}
    for name in sorted(set(names)):
        seeds = collect([Variant(name, name)], root)[name]
        for seed, run in sorted(seeds.items()):
            if run['done'] is None or not run['val']:
                continue
            wd = osp.join(root, name, f'seed_{seed}')
            if params_from == 'workdir':
                config = dumped_config(wd)
            else:
                config = next((p for p in (osp.join(d, name + '.py') for d in exp_dirs) if osp.isfile(p)), None)
            if config is None or not osp.isfile(config):
                raise FileNotFoundError(f'{wd}: no config to count parameters from ({config})')
            if name not in cache:
                cache[name] = (params_of_config(config), step_flops_of_config(config) if flops else math.nan)
            params, step_flops = cache[name]
            last = run['val'][-1]
            step = int(last['step'])
            runs.append(ScalingRun(family_of(name), name, seed, params, step_flops * step, step,
                                   {k: num(v) for k, v in last.items() if k != 'step'}, run.get('per_photo')))
    return runs


def check_sizes_distinct(runs: Sequence[ScalingRun], family: str) -> list[tuple[str, float]]:
    """The family's ``(name, params)`` sorted by parameters; :class:`TrendRefused` when fewer than two models or
    when two models have the same parameter count."""
    sizes = sorted({(r.name, r.params) for r in runs if r.family == family}, key=lambda x: (x[1], x[0]))
    counts = [p for _, p in sizes]
    if len(sizes) < 2:
        raise TrendRefused(f'{family}: {len(sizes)} model(s); a trend needs at least two sizes')
    if len(set(counts)) != len(counts):
        same = ', '.join(f'{n} {p / 1e6:.2f}M' for n, p in sizes)
        raise TrendRefused(f'{family}: no trend stated: the runs do not differ in size ({same}); the preset trained '
                           'several sizes as the same model (use the CPU-scale family: train_all_scales.sh --preset '
                           'cpu)')
    return sizes


def log_slope(params: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against ``log10(params)`` (per decade of parameters)."""
    x = np.log10(np.asarray(params, dtype=np.float64))
    y = np.asarray(values, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0:
        raise TrendRefused('a slope needs at least two distinct parameter counts')
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def family_means(runs: Sequence[ScalingRun], family: str, metric: str) -> list[tuple[str, float, float, int]]:
    """``[(name, params, mean over seeds, seeds)]`` of a family, by parameters."""
    out = []
    for name, params in sorted({(r.name, r.params) for r in runs if r.family == family}, key=lambda x: x[1]):
        vals = [r.final.get(metric, math.nan) for r in runs if r.name == name]
        vals = [v for v in vals if math.isfinite(v)]
        if vals:
            out.append((name, params, sum(vals) / len(vals), len(vals)))
    return out


def family_slope(runs: Sequence[ScalingRun], family: str, metric: str) -> float:
    """Slope of the seed means of ``metric`` against log10(parameters); :class:`TrendRefused` as
    :func:`check_sizes_distinct`."""
    check_sizes_distinct(runs, family)
    pts = family_means(runs, family, metric)
    return log_slope([p for _, p, _, _ in pts], [m for _, _, m, _ in pts])


def per_photo_slopes(runs: Sequence[ScalingRun], family: str, metric: str = CLAIM_METRIC
                     ) -> dict[int, dict[str, float]]:
    """``{seed: {photo: slope}}``: per seed and held-out photo, the slope of ``metric`` over the family's sizes,
    for the seeds every size has a ``per_photo.json`` of (photos common to all sizes of that seed)."""
    sizes = check_sizes_distinct(runs, family)
    by_name: dict[str, dict[int, dict[str, float]]] = {}
    for name, _ in sizes:
        fake = {r.seed: dict(done=True, per_photo=r.per_photo) for r in runs if r.name == name}
        by_name[name] = per_photo_values(fake, metric)
    seeds = set.intersection(*(set(v) for v in by_name.values()))
    out = {}
    for s in sorted(seeds):
        photos = set.intersection(*(set(by_name[n][s]) for n, _ in sizes))
        out[s] = {p: log_slope([pp for _, pp in sizes], [by_name[n][s][p] for n, _ in sizes]) for p in sorted(photos)}
    return {s: v for s, v in out.items() if v}


def slope_claim(runs: Sequence[ScalingRun], a: str = 'transvae', b: str = 'cnn', metric: str = CLAIM_METRIC,
                resamples: int = 10000, seed: int = 0) -> IntervalJudgement:
    """The claim "``a`` improves more with size than ``b``" on a lower-is-better ``metric``: the paired bootstrap
    of ``slope_a - slope_b`` per seed and photo, read as ``slope_a < slope_b``. ``missing`` without per-photo
    data; :class:`TrendRefused` propagates when a family's sizes do not differ."""
    sa, sb = per_photo_slopes(runs, a, metric), per_photo_slopes(runs, b, metric)
    if not sa or not sb:
        return IntervalJudgement(MISSING, None, math.nan, 'no per-photo data for every size and seed')
    return judge_paired(sa, sb, '<', relative=False, resamples=resamples, seed=seed, what='per-photo slopes')


__all__ = ['SCALING_METRICS', 'TrendRefused', 'ScalingRun', 'family_of', 'size_of', 'dumped_config', 'train_resolution',
           'params_of_config', 'step_flops_of_config', 'collect_scaling', 'check_sizes_distinct', 'log_slope',
           'family_means', 'family_slope', 'per_photo_slopes', 'slope_claim']
