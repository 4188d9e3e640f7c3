"""Shared runner for the paper-reproduction tools (``tools/reproduce/ablate_*.py``, ``visualize_early_training.py``).

For a list of :class:`Variant` (label + experiment config) the driver:

1. writes an overlay config ``ROOT/_configs/LABEL.py`` (``_base_`` = the experiment config, the val evaluator plus
   :class:`~transvae.evaluation.metrics.ReconstructionLossMetric`, key ``rec_loss``);
2. trains each variant with ``tools/train.py OVERLAY --work-dir ROOT/LABEL --resume auto`` as a subprocess (one
   process; ``tools/dist_train.sh`` for ``--gpus N > 1`` or ``--launcher pytorch``; ``--launcher slurm`` passes the
   launcher through, the driver itself being started by ``srun``), skipping variants with a ``done.json`` marker and
   resuming interrupted ones from their last checkpoint;
3. parses every ``ROOT/LABEL/<timestamp>/vis_data/scalars.json`` and writes ``ROOT/curves.png`` (val reconstruction
   loss and PSNR vs step), ``ROOT/results.csv`` and ``ROOT/results.md`` (final / best metrics, the measured ordering,
   and the paper's expected ordering and approximate values from PAPER.md §1.8 with "agrees" / "disagrees").
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
EXP_DIR = osp.join(REPO, 'configs', 'experiments')
DONE = 'done.json'
REC_LOSS_METRIC = dict(type='ReconstructionLossMetric', net='alex')
METRIC_KEYS = ('rec_loss', 'psnr', 'ssim', 'lpips')
LOWER_IS_BETTER = {'rec_loss': True, 'psnr': False, 'ssim': False, 'lpips': True}
_ITER_RE = re.compile(r'Iter\((train|val)\)\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]')


@dataclass
class Variant:
    """One ablation point.

    Args:
        label: short name, also the work sub-directory.
        config: experiment config name (``configs/experiments/<name>.py``) or a path.
        paper: approximate paper value of the val reconstruction loss (PAPER.md §1.7–1.8), if given.
        desc: what the variant is, in the paper's words.
    """
    label: str
    config: str
    paper: Optional[float] = None
    desc: str = ''
    hooks: list = field(default_factory=list)  # extra custom_hooks appended in the overlay

    @property
    def config_path(self) -> str:
        if osp.isfile(self.config):
            return osp.abspath(self.config)
        path = osp.join(EXP_DIR, self.config if self.config.endswith('.py') else self.config + '.py')
        if not osp.isfile(path):
            raise FileNotFoundError(f'experiment config not found: {self.config} (looked for {path})')
        return path


@dataclass
class Claim:
    """A relation the paper states between two variants' val reconstruction loss: ``a REL b``.

    ``rel`` is ``'<'`` (a lower), ``'>'`` (a higher), ``'≈'`` (within ``tol`` relative), ``'≪'`` / ``'≫'`` (lower /
    higher by more than ``big`` relative).
    """
    a: str
    rel: str
    b: str
    note: str = ''


@dataclass
class Study:
    """A figure's set of variants, the paper's expected ordering (best first) and its pairwise claims."""
    name: str
    figure: str
    variants: list[Variant]
    expected_order: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    paper_note: str = ''
    expected_str: str = ''


# ---------------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------------
def add_common_args(parser: argparse.ArgumentParser, default_root: str) -> argparse.ArgumentParser:
    parser.add_argument('--root', default=default_root, help=f'output root (default {default_root})')
    parser.add_argument('--preset', default='cpu', help="tools/train.py --preset ('cpu' micro run; 'none' = paper "
                        'scale)')
    parser.add_argument('--max-iters', type=int, default=None, help='iterations per variant (same for all)')
    parser.add_argument('--val-interval', type=int, default=None, help='validate every N iterations')
    parser.add_argument('--gpus', type=int, default=1, help='processes per variant (>1: tools/dist_train.sh)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='pytorch: tools/dist_train.sh CONFIG GPUS; slurm: pass --launcher slurm to train.py '
                        '(start this driver with srun)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='forwarded to tools/train.py --cfg-options (after the driver\'s own)')
    parser.add_argument('--only', nargs='+', default=None, metavar='LABEL', help='run only these variants')
    parser.add_argument('--force', action='store_true', help='retrain variants that have a done.json (resumes)')
    parser.add_argument('--no-train', action='store_true', help='only parse existing work dirs and report')
    parser.add_argument('--no-rec-loss', action='store_true', help='do not add ReconstructionLossMetric')
    parser.add_argument('--approx-tol', type=float, default=0.03,
                        help="relative difference still counted as '≈' (default 0.03)")
    parser.add_argument('--verbose', action='store_true', help="forward every line of the child's log")
    parser.add_argument('--python', default=None, help='interpreter for tools/train.py (default: this one)')
    return parser


# ---------------------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------------------
def _eval_list(cfg) -> list:
    ev = cfg.get('val_evaluator', None)
    if ev is None:
        return []
    ev = ev if isinstance(ev, (list, tuple)) else [ev]
    return [e.to_dict() if hasattr(e, 'to_dict') else dict(e) for e in ev]


def write_overlay(variant: Variant, root: str, add_rec_loss: bool = True) -> str:
    """``ROOT/_configs/LABEL.py``: ``_base_`` = the experiment config, val evaluator + ReconstructionLossMetric."""
    from mmengine.config import Config
    src = variant.config_path
    os.makedirs(osp.join(root, '_configs'), exist_ok=True)
    path = osp.join(root, '_configs', f'{variant.label}.py')
    lines = [f'# Overlay written by tools/reproduce/_common.py for variant {variant.label!r}.',
             f'_base_ = [{src!r}]',
             '# val scalars keyed by iteration (mmengine logs them by epoch = 0 otherwise under an iteration loop)',
             'default_hooks = dict(logger=dict(log_metric_by_epoch=False))',
             "# mmengine's LogProcessor logs every key containing 'loss' as a running mean over the last 10 values",
             '# (also for val); rec_loss must be the current value',
             "log_processor = dict(custom_cfg=[dict(data_src='rec_loss', method_name='mean', window_size=1)])"]
    if add_rec_loss:
        evs = _eval_list(Config.fromfile(src))
        if not any(e.get('type') == REC_LOSS_METRIC['type'] for e in evs):
            evs.append(dict(REC_LOSS_METRIC))
        lines.append(f'val_evaluator = {evs!r}')
    if variant.hooks:
        hooks = [h.to_dict() if hasattr(h, 'to_dict') else dict(h)
                 for h in (Config.fromfile(src).get('custom_hooks', None) or [])]
        lines.append(f'custom_hooks = {hooks + [dict(h) for h in variant.hooks]!r}')
    text = '\n'.join(lines) + '\n'
    if not osp.isfile(path) or open(path).read() != text:
        with open(path, 'w') as f:
            f.write(text)
    return path


def train_command(config: str, work_dir: str, args: argparse.Namespace) -> list[str]:
    """The command line that trains ``config`` into ``work_dir`` (always ``--resume auto``)."""
    python = args.python or sys.executable
    extra = ['--work-dir', work_dir, '--resume', 'auto']
    if args.preset and args.preset != 'none':
        extra += ['--preset', args.preset]
    if args.max_iters:
        extra += ['--max-iters', str(args.max_iters)]
    opts = []
    if args.val_interval:
        opts.append(f'train_cfg.val_interval={args.val_interval}')
    opts += list(args.cfg_options or [])
    if opts:
        extra += ['--cfg-options', *opts]
    if args.launcher == 'pytorch' or (args.gpus and args.gpus > 1 and args.launcher != 'slurm'):
        return ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, str(max(args.gpus, 1)), *extra]
    cmd = [python, osp.join(REPO, 'tools', 'train.py'), config, *extra]
    if args.launcher == 'slurm':
        cmd += ['--launcher', 'slurm']
    return cmd


def is_done(work_dir: str, max_iters: Optional[int] = None) -> bool:
    """A ``done.json`` exists (and, when ``max_iters`` is given, records at least that many iterations)."""
    path = osp.join(work_dir, DONE)
    if not osp.isfile(path):
        return False
    if max_iters is None:
        return True
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return False
    return rec.get('max_iters') is None or int(rec['max_iters']) >= int(max_iters)


def run_variant(variant: Variant, root: str, args: argparse.Namespace, position: int = 0) -> dict:
    """Train one variant (skipped when done); returns its ``done.json`` record. Raises on a failed child."""
    from tqdm import tqdm
    work_dir = osp.join(root, variant.label)
    if not getattr(args, 'force', False) and is_done(work_dir, args.max_iters):
        with open(osp.join(work_dir, DONE)) as f:
            rec = json.load(f)
        tqdm.write(f'[{variant.label}] done.json present, skipped (max_iters={rec.get("max_iters")})')
        return rec
    os.makedirs(work_dir, exist_ok=True)
    config = write_overlay(variant, root, add_rec_loss=not args.no_rec_loss)
    cmd = train_command(config, work_dir, args)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    log_path = osp.join(work_dir, 'driver.log')
    t0 = time.time()
    bar = tqdm(total=args.max_iters or None, desc=variant.label, unit='it', position=position, leave=True,
               dynamic_ncols=True)
    last = ''
    with open(log_path, 'a') as log:
        log.write(f'# {time.strftime("%Y-%m-%d %H:%M:%S")} {shlex.join(cmd)}\n')
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                m = _ITER_RE.search(line)
                if m and m.group(1) == 'train':
                    cur, tot = int(m.group(2)), int(m.group(3))
                    if bar.total != tot:
                        bar.total = tot
                    bar.n = cur
                    bar.set_postfix_str(_short_metrics(line), refresh=False)
                    bar.refresh()
                if args.verbose or 'Iter(val)' in line or 'Error' in line or 'Traceback' in line:
                    tqdm.write(f'[{variant.label}] {line.rstrip()}')
                last = line
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        finally:
            bar.close()
    wall = time.time() - t0
    if rc != 0:
        raise RuntimeError(f'[{variant.label}] tools/train.py exited with {rc}; see {log_path}\n{last}')
    rec = dict(label=variant.label, config=variant.config_path, max_iters=args.max_iters, wall_s=round(wall, 1),
               finished_at=time.strftime('%Y-%m-%d %H:%M:%S'), command=shlex.join(cmd))
    # wall time of earlier (interrupted) attempts is not known exactly; this run's time is recorded
    tmp = osp.join(work_dir, DONE + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(rec, f, indent=1)
    os.replace(tmp, osp.join(work_dir, DONE))
    return rec


def _short_metrics(line: str) -> str:
    keys = ('loss', 'l1', 'lpips')
    out = []
    for k in keys:
        m = re.search(rf'\s{k}:\s*([-\d.eE+]+)', line)
        if m:
            out.append(f'{k}={float(m.group(1)):.3g}')
    return ' '.join(out)


def run_all(variants: Sequence[Variant], root: str, args: argparse.Namespace) -> dict[str, dict]:
    """Train every variant in order (tqdm over variants); returns ``{label: done record}``."""
    from tqdm import tqdm
    os.makedirs(root, exist_ok=True)
    records: dict[str, dict] = {}
    outer = tqdm(variants, desc='variants', unit='variant', position=0, dynamic_ncols=True)
    for v in outer:
        outer.set_postfix_str(v.label)
        records[v.label] = run_variant(v, root, args, position=1)
    outer.close()
    return records


# ---------------------------------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------------------------------
def read_scalars(work_dir: str) -> tuple[list[dict], list[dict]]:
    """``(val_rows, train_rows)`` from every ``work_dir/*/vis_data/scalars.json``, sorted by step.

    Runs are read in timestamp order; a step logged again by a later (resumed) run replaces the earlier row.
    """
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    val: dict[int, dict] = {}
    train: dict[int, dict] = {}
    for path in files:
        last_train = 0
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if 'step' not in row:
                    continue
                if any(k in row for k in METRIC_KEYS) and 'lr' not in row:
                    if int(row['step']) == 0 and last_train > 0:  # logged by epoch (0): take the last train iter
                        row = dict(row, step=last_train)
                    if 'rec_l1' in row and 'rec_lpips' in row:
                        # mmengine's LogProcessor logs keys containing 'loss' as a running mean of the last 10 vals
                        # unless log_processor.custom_cfg says 'current' (the overlay does); the two terms are exact
                        row = dict(row, rec_loss=float(row['rec_l1']) + REC_LOSS_METRIC.get('lpips_weight', 1.0)
                                   * float(row['rec_lpips']))
                    val[int(row['step'])] = row
                else:
                    last_train = int(row['step'])
                    train[last_train] = row
    return [val[k] for k in sorted(val)], [train[k] for k in sorted(train)]


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float('nan')
    return v


def summarize(label: str, val_rows: list[dict], record: Optional[dict] = None) -> dict:
    """Final and best val metrics of one variant."""
    out: dict = {'label': label, 'n_val': len(val_rows), 'final_step': val_rows[-1]['step'] if val_rows else None}
    for k in METRIC_KEYS:
        vals = [(_num(r.get(k)), r['step']) for r in val_rows if k in r]
        vals = [(v, s) for v, s in vals if not math.isnan(v)]
        out[f'final_{k}'] = vals[-1][0] if vals else float('nan')
        if vals:
            best = min(vals) if LOWER_IS_BETTER[k] else max(vals)
            out[f'best_{k}'] = best[0]
            out[f'best_{k}_step'] = best[1]
        else:
            out[f'best_{k}'] = float('nan')
            out[f'best_{k}_step'] = None
    for k in ('rec_l1', 'rec_lpips'):  # the two terms of rec_loss (ReconstructionLossMetric)
        vals = [_num(r.get(k)) for r in val_rows if k in r]
        out[f'final_{k}'] = vals[-1] if vals else float('nan')
    out['wall_s'] = (record or {}).get('wall_s')
    return out


def collect(variants: Sequence[Variant], root: str) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    curves, summaries = {}, {}
    for v in variants:
        wd = osp.join(root, v.label)
        rec = None
        if osp.isfile(osp.join(wd, DONE)):
            with open(osp.join(wd, DONE)) as f:
                rec = json.load(f)
        val_rows, _ = read_scalars(wd)
        curves[v.label] = val_rows
        summaries[v.label] = summarize(v.label, val_rows, rec)
    return curves, summaries


# ---------------------------------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------------------------------
def plot_curves(curves: dict[str, list[dict]], out_png: str, title: str = '',
                paper: Optional[dict[str, float]] = None) -> str:
    """Two panels: val reconstruction loss (L1 + LPIPS) vs step and val PSNR vs step, one line per variant."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, rows in curves.items():
        for ax, key in zip(axes, ('rec_loss', 'psnr')):
            pts = [(r['step'], _num(r.get(key))) for r in rows if key in r]
            pts = [(s, v) for s, v in pts if math.isfinite(v)]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker='o', ms=3, label=label)
    axes[0].set_ylabel('val reconstruction loss (L1[-1,1] + LPIPS-alex)')
    axes[1].set_ylabel('val PSNR (dB)')
    for ax in axes:
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def _fmt(v, nd=4) -> str:
    if v is None:
        return '—'
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return '—'
    return f'{f:.{nd}f}'


def measured_order(summaries: dict[str, dict], key: str = 'final_rec_loss') -> list[str]:
    lower = LOWER_IS_BETTER.get(key.split('_', 1)[1], True) if key.startswith(('final_', 'best_')) else True
    items = [(s[key], lab) for lab, s in summaries.items() if math.isfinite(_num(s.get(key)))]
    items.sort(reverse=not lower)
    return [lab for _, lab in items]


def order_string(order: list[str], summaries: dict[str, dict], key: str, tol: float) -> str:
    """``a < b ≈ c`` with '≈' between neighbours within ``tol`` relative."""
    if not order:
        return '—'
    parts = [order[0]]
    for prev, cur in zip(order, order[1:]):
        a, b = summaries[prev][key], summaries[cur][key]
        rel = '≈' if abs(a - b) <= tol * max(abs(a), abs(b), 1e-12) else '<'
        parts += [rel, cur]
    return ' '.join(parts)


def check_claim(claim: Claim, values: dict[str, float], tol: float, big: float = 0.25) -> tuple[str, str]:
    """``(verdict, detail)``: verdict is 'agrees', 'disagrees' or 'n/a'."""
    a, b = values.get(claim.a), values.get(claim.b)
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return 'n/a', 'missing'
    rel_diff = (a - b) / max(abs(b), 1e-12)
    ok = {
        '<': a < b,
        '>': a > b,
        '≈': abs(rel_diff) <= tol,
        '≪': rel_diff < -big,
        '≫': rel_diff > big,
    }[claim.rel]
    return ('agrees' if ok else 'disagrees'), f'{a:.4f} vs {b:.4f} ({rel_diff * 100:+.1f}%)'


def write_results(study: Study, summaries: dict[str, dict], root: str, tol: float,
                  extra_lines: Iterable[str] = ()) -> tuple[str, str]:
    """``ROOT/results.csv`` and ``ROOT/results.md``; returns their paths."""
    labels = [v.label for v in study.variants]
    paper = {v.label: v.paper for v in study.variants}
    cols = ['label', 'config', 'paper_rec_loss', 'final_step', 'n_val', 'final_rec_loss', 'best_rec_loss',
            'final_psnr', 'best_psnr', 'final_ssim', 'best_ssim', 'final_lpips', 'best_lpips', 'final_rec_l1',
            'final_rec_lpips', 'wall_s']
    csv_path = osp.join(root, 'results.csv')
    with open(csv_path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(cols)
        for v in study.variants:
            s = summaries.get(v.label, {})
            row = {**s, 'label': v.label, 'config': v.config, 'paper_rec_loss': v.paper}
            w.writerow(['' if row.get(c) is None else row.get(c) for c in cols])

    key = 'final_rec_loss'
    have_rec = any(math.isfinite(_num(summaries.get(lab, {}).get(key))) for lab in labels)
    if not have_rec:  # no ReconstructionLossMetric in these logs: rank by LPIPS instead
        key = 'final_lpips'
    values = {lab: _num(summaries.get(lab, {}).get(key)) for lab in labels}
    order = measured_order({lab: summaries[lab] for lab in labels if lab in summaries}, key)
    lines = [f'# {study.figure}: {study.name}', '']
    lines.append(f'Val reconstruction loss = L1 (on [-1, 1]) + LPIPS-alex, mean over the val images; lower is better. '
                 f"'≈' = within {tol * 100:.0f}% relative.")
    lines.append('')
    lines.append('| variant | config | paper rec loss | final step | final rec loss (L1 + LPIPS) | best rec loss | '
                 'final PSNR | best PSNR | final SSIM | final LPIPS (uint8) | train wall (s) |')
    lines.append('|---|---|---|---|---|---|---|---|---|---|---|')
    for v in study.variants:
        s = summaries.get(v.label, {})
        lines.append(f'| {v.label} | `{v.config}` | {_fmt(v.paper, 3)} | {s.get("final_step", "—")} | '
                     f'{_fmt(s.get("final_rec_loss"))} ({_fmt(s.get("final_rec_l1"), 3)} + '
                     f'{_fmt(s.get("final_rec_lpips"), 3)}) | {_fmt(s.get("best_rec_loss"))} | '
                     f'{_fmt(s.get("final_psnr"), 2)} | {_fmt(s.get("best_psnr"), 2)} | {_fmt(s.get("final_ssim"))} | '
                     f'{_fmt(s.get("final_lpips"))} | {_fmt(s.get("wall_s"), 0)} |')
    lines.append('')
    lines.append(f'**Measured ordering** (by {key}, best first): {order_string(order, summaries, key, tol)}')
    lines.append('')
    exp = [lab for lab in study.expected_order if lab in labels]
    paper_vals = {lab: paper[lab] for lab in exp if paper.get(lab) is not None}
    if exp:
        exp_str = study.expected_str or ' < '.join(
            f'{lab} (≈{paper_vals[lab]:g})' if lab in paper_vals else lab for lab in exp)
        lines.append(f'**Paper ordering** ({study.figure}, PAPER.md §1.8, best first): {exp_str}')
        lines.append('')
        measured = [lab for lab in order if lab in exp]
        if len(measured) < len(exp):
            lines.append('Full ordering: n/a (variants missing).')
        else:
            same = measured == exp
            lines.append(f'Full strict ordering: **{"agrees" if same else "disagrees"}** with the paper '
                         '(ties within the paper\'s ≈ are judged by the claims below).')
        lines.append('')
    if study.claims:
        lines.append('| paper claim | measured | verdict |')
        lines.append('|---|---|---|')
        n_ok = 0
        for c in study.claims:
            verdict, detail = check_claim(c, values, tol)
            n_ok += verdict == 'agrees'
            note = f' ({c.note})' if c.note else ''
            lines.append(f'| {c.a} {c.rel} {c.b}{note} | {detail} | {verdict} |')
        lines.append('')
        lines.append(f'{n_ok}/{len(study.claims)} paper claims agree.')
        lines.append('')
    if study.paper_note:
        lines.append(study.paper_note)
        lines.append('')
    lines.extend(extra_lines)
    md_path = osp.join(root, 'results.md')
    with open(md_path, 'w') as f:
        f.write('\n'.join(lines).rstrip() + '\n')
    return csv_path, md_path


def report(study: Study, root: str, tol: float = 0.03, extra_lines: Iterable[str] = ()) -> str:
    """Parse the work dirs, write curves.png / results.csv / results.md; returns the Markdown text."""
    curves, summaries = collect(study.variants, root)
    plot_curves(curves, osp.join(root, 'curves.png'), title=f'{study.figure}: {study.name}')
    _, md = write_results(study, summaries, root, tol, extra_lines)
    with open(md) as f:
        return f.read()


def _run_lines(root: str) -> list[str]:
    """Driver invocations recorded in ``ROOT/driver_runs.jsonl`` (wall time incl. validation, load average)."""
    path = osp.join(root, 'driver_runs.jsonl')
    if not osp.isfile(path):
        return []
    lines = ['Driver runs (train + in-loop validation, all variants; a run that skipped finished variants is '
             'shorter):', '']
    with open(path) as f:
        for ln in f:
            try:
                r = json.loads(ln)
            except ValueError:
                continue
            lines.append(f'- {r.get("started")}: {r.get("wall_s"):.0f} s for {len(r.get("variants", []))} variants, '
                         f'preset {r.get("preset")}, max_iters {r.get("max_iters")}, val_interval '
                         f'{r.get("val_interval")}; load average (1/5/15 min) {r.get("loadavg_start")} -> '
                         f'{r.get("loadavg_end")} on {r.get("cpus")} CPUs')
    return lines


def main_for_study(study: Study, args: argparse.Namespace) -> str:
    """Train (unless ``--no-train``) and report one study; prints and returns results.md."""
    variants = study.variants
    if args.only:
        unknown = set(args.only) - {v.label for v in variants}
        if unknown:
            raise SystemExit(f'--only: unknown variants {sorted(unknown)}; known: {[v.label for v in variants]}')
        variants = [v for v in variants if v.label in args.only]
    root = osp.abspath(args.root)
    os.makedirs(root, exist_ok=True)
    t0 = time.time()
    if not args.no_train:
        load0 = os.getloadavg()
        run_all(variants, root, args)
        rec = dict(started=time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t0)),
                   wall_s=round(time.time() - t0, 1), preset=args.preset, max_iters=args.max_iters,
                   val_interval=args.val_interval, variants=[v.label for v in variants],
                   loadavg_start=[round(x, 2) for x in load0], loadavg_end=[round(x, 2) for x in os.getloadavg()],
                   cpus=os.cpu_count())
        with open(osp.join(root, 'driver_runs.jsonl'), 'a') as f:
            f.write(json.dumps(rec) + '\n')
    text = report(study, root, args.approx_tol, _run_lines(root))
    print(text)
    return text


# ---------------------------------------------------------------------------------------------------------------------
# checkpoints and val photos (visualize_early_training.py, test_rope_extrapolation.py)
# ---------------------------------------------------------------------------------------------------------------------
def val_photo_paths(data_root: str = 'data/sample_photos', num: Optional[int] = None,
                    one_per_source: bool = False) -> list[str]:
    """Sorted val photos ``data_root/val/<source>/*.png`` (prepared on first use); ``one_per_source`` keeps the first
    of each source (the bikes clip has eight frames)."""
    data_root = data_root if osp.isabs(data_root) else osp.join(REPO, data_root)
    paths = sorted(glob.glob(osp.join(data_root, 'val', '*', '*.png')))
    if not paths:
        from transvae.datasets.sample_photos import prepare_sample_photos
        prepare_sample_photos(data_root)
        paths = sorted(glob.glob(osp.join(data_root, 'val', '*', '*.png')))
    if one_per_source:
        seen, kept = set(), []
        for p in paths:
            src = osp.basename(osp.dirname(p))
            if src not in seen:
                seen.add(src)
                kept.append(p)
        paths = kept
    return paths[:num] if num else paths


def center_crop_photo(path: str, size: int):
    """``(float (3, size, size) in [0, 1], upscaled: bool)``: bicubic resize of the short side up to ``size`` only
    when the photo is smaller, then a center crop (no downscaling, so larger crops show more of the photo)."""
    import numpy as np
    import torch
    from PIL import Image
    img = Image.open(path).convert('RGB')
    w, h = img.size
    upscaled = min(w, h) < size
    if upscaled:
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0, upscaled


def resolve_checkpoint(path: str, config: Optional[str] = None, step: Optional[int] = None) -> tuple[str, str]:
    """``(config, checkpoint)`` from a work dir (its dumped config; ``iter_{step}.pth`` or the last checkpoint) or a
    ``.pth`` (config from ``config``, else the dumped config in the same folder)."""
    if osp.isdir(path):
        wd = path
        if step is not None:
            ckpt = osp.join(wd, f'iter_{step}.pth')
        else:
            ptr = osp.join(wd, 'last_checkpoint')
            if osp.isfile(ptr):
                with open(ptr) as f:
                    ckpt = f.read().strip()
                ckpt = ckpt if osp.isabs(ckpt) else osp.join(wd, osp.basename(ckpt))
            else:
                cands = sorted(glob.glob(osp.join(wd, 'iter_*.pth')),
                               key=lambda p: int(re.findall(r'iter_(\d+)', p)[-1]))
                if not cands:
                    raise FileNotFoundError(f'no checkpoint in {wd}')
                ckpt = cands[-1]
    else:
        wd, ckpt = osp.dirname(osp.abspath(path)), path
    if not osp.isfile(ckpt):
        raise FileNotFoundError(f'checkpoint not found: {ckpt}')
    if config is None:
        dumped = sorted(glob.glob(osp.join(wd, '*.py')))
        if not dumped:
            raise FileNotFoundError(f'no dumped config in {wd}; pass --config')
        config = dumped[0]
    return config, ckpt


def load_model(config: str, checkpoint: str, preset: Optional[str] = None):
    """``transvae.apis.init_model`` on CPU (``preset`` only for an undumped experiment config)."""
    from transvae.apis import init_model
    return init_model(config, checkpoint, device='cpu', preset=preset if preset not in (None, 'none') else None)


def reconstruct_images(model, images) -> 'object':
    """``transvae.apis.reconstruct`` one image at a time (sizes may differ); returns a list of ``(3, H, W)``."""
    from transvae.apis import reconstruct
    return [reconstruct(model, x) for x in images]


# ---------------------------------------------------------------------------------------------------------------------
# single-variant CLI (used by train_all_scales.sh)
# ---------------------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    """``python tools/reproduce/_common.py CONFIG --label NAME --root ROOT [common flags]``: train one variant with
    the done.json / resume logic; ``--report-only`` prints its final val metrics."""
    parser = argparse.ArgumentParser(description='Train one config with the reproduce driver (done.json, resume).')
    parser.add_argument('config', help='config path or experiment name')
    parser.add_argument('--label', default=None, help='work sub-directory (default: config file stem)')
    add_common_args(parser, default_root='work_dirs/reproduce/misc')
    args = parser.parse_args(argv)
    label = args.label or osp.splitext(osp.basename(args.config))[0]
    v = Variant(label, args.config)
    root = osp.abspath(args.root)
    if not args.no_train:
        run_variant(v, root, args)
    _, summaries = collect([v], root)
    s = summaries[label]
    print(f'{label}: final step {s["final_step"]}  rec_loss {_fmt(s["final_rec_loss"])}  psnr '
          f'{_fmt(s["final_psnr"], 2)}  ssim {_fmt(s["final_ssim"])}  lpips {_fmt(s["final_lpips"])}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
