"""A study's report: per-variant seed means and spreads, the measured ordering, and a verdict per paper claim.

``report_study(study, root)`` writes ``ROOT/results.md``, ``ROOT/results.csv`` and ``ROOT/curves.png`` (mean over
seeds, shaded min-max) and returns the Markdown.
"""
from __future__ import annotations

import csv
import math
import os.path as osp
import subprocess
from typing import Iterable

from .logs import (CLAIM_METRIC, METRICS, collect, final_stats, last_common_step, per_photo_values, read_jsonl,
                   stats_at)
from .study import AGREE, DISAGREE, NOT_RESOLVED, REPO, Study, judge_claim

_TABLE = (('vgg/rec_loss', 'rec loss (L1 + LPIPS-vgg)', 4), ('alex/rec_loss', 'rec loss (L1 + LPIPS-alex)', 4),
          ('psnr', 'PSNR (dB)', 2), ('ssim', 'SSIM', 3), ('lpips', 'LPIPS-alex (uint8)', 3))


def fmt_stats(stats, nd: int = 4) -> str:
    """``mean ± half-range (n=k)``; ``—`` without values."""
    if not stats.n:
        return '—'
    if stats.n == 1:
        return f'{stats.mean:.{nd}f} (1 seed)'
    return f'{stats.mean:.{nd}f} ± {stats.spread / 2:.{nd}f}'


def git_commit() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def measured_order(study: Study, runs: dict, metric: str = CLAIM_METRIC) -> list[tuple[str, float]]:
    items = [(v.label, final_stats(runs.get(v.label, {}), metric).mean) for v in study.variants]
    items = [(lab, m) for lab, m in items if math.isfinite(m)]
    return sorted(items, key=lambda x: x[1] if METRICS.get(metric, True) else -x[1])


def claim_lines(study: Study, runs: dict, tol: float, metric: str = CLAIM_METRIC) -> tuple[list[str], dict]:
    """Markdown table rows of the claims and the verdict counts of the seed-spread rule (``counts``) and of the
    paired bootstrap (``counts['interval']``).

    Two verdict columns: the seed-spread rule (:func:`~.study.judge_claim`, kept beside the new one for one release)
    and the paired bootstrap over seeds and held-out photos (:func:`~.bootstrap.judge_claim_paired`: "mean diff
    [lo, hi] -> verdict"), for claims whose runs have ``per_photo.json``; older runs read "no per-photo data"."""
    from .bootstrap import judge_claim_paired
    stats = {v.label: final_stats(runs.get(v.label, {}), metric) for v in study.variants}
    per_photo = {v.label: per_photo_values(runs.get(v.label, {}), metric) for v in study.variants}
    lines = ['| paper claim | measured (seed means) | verdict (seed spread) | paired bootstrap 95%: mean diff a − b '
             '[lo, hi] -> verdict |', '|---|---|---|---|']
    counts = {AGREE: 0, DISAGREE: 0, NOT_RESOLVED: 0, 'missing': 0}
    interval_counts: dict[str, int] = {}
    for c in study.claims:
        j = judge_claim(c, stats, tol=tol)
        counts[j.verdict] += 1
        b = judge_claim_paired(c, per_photo, tol=tol)
        interval_counts[b.verdict] = interval_counts.get(b.verdict, 0) + 1
        if b.interval is not None:
            cell = f'{b.detail} ({b.interval.n_seeds} seeds x {b.interval.n_photos} photos)'
        else:
            cell = b.detail
        note = f' ({c.note})' if c.note else ''
        lines.append(f'| {c.a} {c.rel} {c.b}{note} | {j.detail} | **{j.verdict}** | {cell} |')
    counts['interval'] = interval_counts
    return lines, counts


def intermediate_lines(study: Study, runs: dict, tol: float, metric: str = CLAIM_METRIC) -> list[str]:
    """Claims judged at the last validation step that every started seed of both variants reached: a progress
    view while runs are unfinished, labelled as such (the final verdicts above count finished seeds only)."""
    out = ['Intermediate (runs unfinished; judged at the last validation step both variants\' started seeds reached, '
           'not a final result):', '', '| paper claim | step | measured | verdict |', '|---|---|---|---|']
    for c in study.claims:
        step = last_common_step([runs.get(c.a, {}), runs.get(c.b, {})], metric)
        if step is None:
            out.append(f'| {c.a} {c.rel} {c.b} | — | not started | — |')
            continue
        j = judge_claim(c, {lab: stats_at(runs.get(lab, {}), metric, step) for lab in (c.a, c.b)}, tol=tol)
        out.append(f'| {c.a} {c.rel} {c.b} | {step} | {j.detail} | {j.verdict} |')
    return out


def write_csv(study: Study, runs: dict, path: str) -> str:
    cols = ['label', 'config', 'paper_rec_loss', 'seed', 'finished', 'final_step', *METRICS, 'wall_s']
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(cols)
        for v in study.variants:
            for seed, run in sorted(runs.get(v.label, {}).items()):
                last = run['val'][-1] if run['val'] else {}
                w.writerow([v.label, v.config, v.paper, seed, run['done'] is not None, last.get('step', ''),
                            *[last.get(m, '') for m in METRICS], (run['done'] or {}).get('wall_s', '')])
    return path


def report_study(study: Study, root: str, tol: float = 0.03, extra_lines: Iterable[str] = (),
                 metric: str = CLAIM_METRIC) -> str:
    """Write ``results.md`` / ``results.csv`` / ``curves.png`` under ``root``; returns the Markdown."""
    from .plots import plot_curves
    runs = collect(study.variants, root)
    plot_curves(study, runs, osp.join(root, 'curves.png'))
    write_csv(study, runs, osp.join(root, 'results.csv'))
    lines = [f'# {study.figure}: {study.name}', '',
             f'Commit `{git_commit()}`. Final held-out values, mean ± half the seed range over the finished seeds '
             '(a variant with one finished seed has no spread). Claims are judged on the rec loss with LPIPS-vgg '
             f"(the paper's); '≈' = within {tol * 100:.0f}% relative, '≪' = lower by more than 25%.", '',
             '| variant | paper | seeds done (last val step) | ' + ' | '.join(t for _, t, _ in _TABLE)
             + ' | train wall (s) |',
             '|---|---|---|' + '---|' * len(_TABLE) + '---|']
    for v in study.variants:
        r = runs.get(v.label, {})
        done = sorted(s for s, run in r.items() if run['done'] is not None)
        at = ', '.join(f's{s}: {run["val"][-1]["step"] if run["val"] else 0}' for s, run in sorted(r.items()))
        walls = [run['done']['wall_s'] for run in r.values() if run['done']]
        cells = [fmt_stats(final_stats(r, m), nd) for m, _, nd in _TABLE]
        paper = f'{v.paper:g}' if v.paper is not None else '—'
        wall = f'{sum(walls) / len(walls):.0f}' if walls else '—'
        lines.append(f'| {v.label} | {paper} | {done or "none"} of {sorted(r) or "none"} ({at or "—"}) | '
                     + ' | '.join(cells)
                     + f' | {wall} |')
    order = measured_order(study, runs, metric)
    lines += ['', '**Measured ordering** (best first): ' + (' < '.join(f'{lab} ({m:.4f})' for lab, m in order)
                                                          or '—')]
    if study.expected_order:
        exp = study.expected_str or ' < '.join(study.expected_order)
        lines += ['', f'**Paper ordering**: {exp}']
    if study.claims:
        cl, counts = claim_lines(study, runs, tol, metric)
        iv = counts['interval']
        iv_str = ', '.join(f'{n} {v}' for v, n in sorted(iv.items(), key=lambda kv: -kv[1]))
        lines += ['', *cl, '', f'Seed-spread rule: {counts[AGREE]} agree, {counts[DISAGREE]} disagree, '
                  f'{counts[NOT_RESOLVED]} not resolved, {counts["missing"]} missing (of {len(study.claims)} claims). '
                  f'Paired bootstrap: {iv_str}.',
                  '', 'The paired bootstrap (paper_studies.bootstrap): per seed and held-out photo the difference of '
                  'the claim metric, a 95% percentile interval of its mean by 10,000 resamples of the seeds (as '
                  'units) and the photos (RNG seed 0); agree / disagree when the whole interval satisfies / '
                  "contradicts the claim (threshold 0 for '<', 25% of b for '≪', the ±3% band for '≈'), 'no "
                  "difference at this scale' when it contains 0 (with the bound on |diff|), 'not resolved' "
                  'otherwise.']
        unfinished = [v.label for v in study.variants if any(run['done'] is None for run in runs.get(v.label, {})
                                                                 .values())]
        if unfinished:
            lines += ['', *intermediate_lines(study, runs, tol, metric)]
    if study.paper_note:
        lines += ['', study.paper_note]
    lines += ['', *driver_lines(root), *extra_lines]
    text = '\n'.join(lines).rstrip() + '\n'
    with open(osp.join(root, 'results.md'), 'w') as f:
        f.write(text)
    return text


def driver_lines(root: str) -> list[str]:
    """The driver invocations recorded in ``ROOT/driver_runs.jsonl`` (wall time, load average)."""
    path = osp.join(root, 'driver_runs.jsonl')
    if not osp.isfile(path):
        return []
    out = ['Driver runs (train + in-loop validation; a run that skipped finished variants is shorter):', '']
    for r in read_jsonl(path):
        out.append(f'- {r.get("started")}: {r.get("wall_s", 0):.0f} s, seeds {r.get("seeds")}, variants '
                   f'{r.get("variants")}, preset {r.get("preset")}, {r.get("max_iters")} iterations of batch '
                   f'{r.get("batch_size")}; load average {r.get("loadavg_start")} -> {r.get("loadavg_end")} on '
                   f'{r.get("cpus")} CPUs')
    return out
