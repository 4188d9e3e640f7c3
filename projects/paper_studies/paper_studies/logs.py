"""Read what training wrote: the val and train scalars of a work dir (``*/vis_data/scalars.json``).

Val keys: ``psnr``, ``ssim``, ``lpips`` (LPIPS-alex on uint8 images) and the reconstruction losses
``vgg/rec_loss`` (L1 + LPIPS-vgg, the paper's) and ``alex/rec_loss`` with their terms ``*/rec_l1``, ``*/rec_lpips``.
mmengine prefixes val keys with the dataset's metainfo name in some versions (``tiny/psnr``); :func:`canonical`
strips such prefixes except ``vgg`` / ``alex``.
"""
from __future__ import annotations

import glob
import json
import math
import os.path as osp
from collections.abc import Iterator
from typing import Optional

from .study import SeedStats, Variant, seed_stats

#: Metrics summarised per variant and whether lower is better.
METRICS = {'vgg/rec_loss': True, 'alex/rec_loss': True, 'psnr': False, 'ssim': False, 'lpips': True,
           'vgg/rec_lpips': True, 'alex/rec_lpips': True, 'vgg/rec_l1': True}
#: The metric the paper's claims are judged on: L1 + LPIPS with the paper's perceptual network (VGG).
CLAIM_METRIC = 'vgg/rec_loss'
_KEEP_PREFIXES = ('vgg', 'alex')


def canonical(key: str) -> str:
    """``'val/tiny/psnr'`` -> ``'psnr'``; ``'vgg/rec_loss'`` stays."""
    parts = key.split('/')
    while len(parts) > 1 and parts[0] not in _KEEP_PREFIXES:
        parts = parts[1:]
    return '/'.join(parts)


def num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def read_scalars(work_dir: str) -> tuple[list[dict], list[dict]]:
    """``(val_rows, train_rows)`` of every run in ``work_dir`` (``<timestamp>/vis_data/scalars.json``), sorted by step.

    Runs are read in timestamp order; a step logged again by a later (resumed) run replaces the earlier row. Val rows
    get canonical keys and, where both terms are present, ``*/rec_loss = rec_l1 + rec_lpips`` recomputed exactly.
    """
    val: dict[int, dict] = {}
    train: dict[int, dict] = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        for row in read_jsonl(path):
            if 'step' not in row:
                continue
            step = int(row['step'])
            if 'lr' in row or 'loss' in row:
                train[step] = row
                continue
            row = {canonical(k): v for k, v in row.items()}
            for p in _KEEP_PREFIXES:
                if f'{p}/rec_l1' in row and f'{p}/rec_lpips' in row:
                    row[f'{p}/rec_loss'] = num(row[f'{p}/rec_l1']) + num(row[f'{p}/rec_lpips'])
            if any(k in row for k in METRICS):
                val[step] = row
    return [val[k] for k in sorted(val)], [train[k] for k in sorted(train)]


def read_jsonl(path: str) -> Iterator[dict]:
    """The JSON objects of a JSON-lines file, one per line; a line that is not JSON (e.g. cut by a kill) is skipped."""
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def train_seconds(train_rows: list[dict], log_interval: Optional[int] = None) -> list[tuple[int, float]]:
    """Cumulative training wall time (s) at each logged step: the logged per-iteration ``time`` (mmengine's mean over
    the logging window) times the steps since the previous row. Validation time is not included."""
    out, total, prev = [], 0.0, 0
    for r in train_rows:
        step, t = int(r['step']), num(r.get('time'))
        if math.isfinite(t):
            total += t * (step - prev)
        prev = step
        out.append((step, total))
    return out


def seconds_at(step: int, cum: list[tuple[int, float]]) -> float:
    """Training seconds at ``step`` (linear between logged steps)."""
    if not cum:
        return math.nan
    prev_s, prev_t = 0, 0.0
    for s, t in cum:
        if s >= step:
            return prev_t + (t - prev_t) * (step - prev_s) / max(s - prev_s, 1)
        prev_s, prev_t = s, t
    return cum[-1][1]


def collect(variants: list[Variant], root: str, seeds: Optional[list[int]] = None) -> dict[str, dict[int, dict]]:
    """``{label: {seed: {'val': rows, 'train': rows, 'done': record or None, 'per_photo': record or None}}}`` for
    the seeds found on disk (``per_photo``: :func:`~.per_photo.read_per_photo`).

    Only ``seed_<int>`` directories count (not a ``seed_0.old`` moved aside); an unfinished run that has not
    validated yet is left out, so it cannot turn a seed mean into NaN."""
    from .per_photo import read_per_photo
    from .run import read_done
    out: dict[str, dict[int, dict]] = {}
    for v in variants:
        runs = {}
        for wd in sorted(glob.glob(osp.join(root, v.label, 'seed_*'))):
            tail = osp.basename(wd)[len('seed_'):]
            if not tail.isdigit() or (seeds is not None and int(tail) not in seeds):
                continue
            val, train = read_scalars(wd)
            done = read_done(wd)
            if val or done is not None:
                runs[int(tail)] = dict(val=val, train=train, done=done, per_photo=read_per_photo(wd))
        out[v.label] = runs
    return out


def final_stats(runs: dict[int, dict], metric: str, finished_only: bool = True) -> SeedStats:
    """A metric's final value over the seeds (only seeds with a ``done.json`` unless ``finished_only=False``)."""
    vals = []
    for run in runs.values():
        if finished_only and run['done'] is None:
            continue
        rows = [r for r in run['val'] if metric in r]
        if rows:
            vals.append(num(rows[-1][metric]))
    return seed_stats(vals)


def per_photo_values(runs: dict[int, dict], metric: str) -> dict[int, dict[str, float]]:
    """``{seed: {photo: value}}`` of ``metric`` from the finished seeds that have a ``per_photo.json`` (the paired
    bootstrap's input); seeds without one are left out."""
    out = {}
    for seed, run in runs.items():
        rec = run.get('per_photo')
        if run.get('done') is None or not rec:
            continue
        vals = {p: num(m.get(metric)) for p, m in rec['photos'].items() if metric in m}
        if vals:
            out[seed] = vals
    return out


def curve(runs: dict[int, dict], metric: str) -> list[tuple[int, SeedStats]]:
    """``[(step, stats over the seeds that logged that step)]``."""
    steps: dict[int, list[float]] = {}
    for run in runs.values():
        for r in run['val']:
            if metric in r:
                steps.setdefault(int(r['step']), []).append(num(r[metric]))
    return [(s, seed_stats(v)) for s, v in sorted(steps.items())]


def stats_at(runs: dict[int, dict], metric: str, step: int) -> SeedStats:
    """A metric at validation step ``step`` over the seeds that logged it (finished or not)."""
    return seed_stats([num(r[metric]) for run in runs.values() for r in run['val']
                       if int(r['step']) == step and metric in r])


def last_common_step(runs_list: list[dict[int, dict]], metric: str) -> Optional[int]:
    """The largest validation step (> 0) logged by every run of every variant given; ``None`` if there is none."""
    steps = None
    for runs in runs_list:
        if not runs:
            return None
        for run in runs.values():
            s = {int(r['step']) for r in run['val'] if metric in r and int(r['step']) > 0}
            steps = s if steps is None else steps & s
    return max(steps) if steps else None
