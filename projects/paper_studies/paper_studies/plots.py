"""Study figures: validation curves over seeds, time to quality, per-epoch training curves (Fig. 5a)."""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Optional

from .logs import curve, num, seconds_at, train_seconds
from .study import Study


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out_png: str) -> str:
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    _plt().close(fig)
    return out_png


def plot_curves(study: Study, runs: dict, out_png: str,
                metrics: tuple[str, ...] = ('vgg/rec_loss', 'alex/rec_loss', 'psnr')) -> str:
    """One panel per metric: the seed mean vs iteration per variant, shaded between the seeds' min and max."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.3), squeeze=False)
    names = {'vgg/rec_loss': 'val L1 + LPIPS-vgg', 'alex/rec_loss': 'val L1 + LPIPS-alex', 'psnr': 'val PSNR (dB)'}
    for v in study.variants:
        r = runs.get(v.label, {})
        for ax, m in zip(axes[0], metrics):
            pts = [(s, st) for s, st in curve(r, m) if st.n]
            if not pts:
                continue
            xs = [s for s, _ in pts]
            line, = ax.plot(xs, [st.mean for _, st in pts], marker='o', ms=3, label=f'{v.label} ({len(r)} seeds)')
            ax.fill_between(xs, [min(st.values) for _, st in pts], [max(st.values) for _, st in pts],
                            color=line.get_color(), alpha=0.2)
    for ax, m in zip(axes[0], metrics):
        ax.set_xlabel('iteration')
        ax.set_ylabel(names.get(m, m))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f'{study.figure}: {study.name} (mean over seeds, band = min-max)')
    return _save(fig, out_png)


def _load_label(run: dict) -> str:
    """``'load 5.9'``: the 15-min load average the driver recorded when the run finished (``''`` if unknown)."""
    la = (run.get('done') or {}).get('loadavg_end') or []
    return f'load {num(la[-1]):.1f}' if la else 'load n/a'


def plot_time_to_quality(study: Study, runs: dict, out_png: str, step_seconds: Optional[dict[str, float]] = None,
                         metrics: tuple[str, ...] = ('psnr', 'lpips')) -> str:
    """Held-out quality against training time, per variant and seed.

    With ``step_seconds`` (``label -> s/it`` measured interleaved in one process, :mod:`.speed`) the top row puts the
    validation at iteration ``k`` at ``k × s/it``: quality(k) is load-independent (fixed-iteration runs) and the
    s/it ratio is measured on equal terms. The bottom row (the only one without ``step_seconds``) is the wall-clock
    the runs logged (mmengine's per-iteration ``time``, validation excluded), which depends on the machine's load;
    each line names the 15-min load average at the end of its run.
    """
    from .speed import equal_time, quality_vs_time
    plt = _plt()
    names = {'psnr': 'held-out PSNR (dB)', 'lpips': 'held-out LPIPS-alex', 'ssim': 'held-out SSIM',
             'vgg/rec_loss': 'held-out L1 + LPIPS-vgg'}
    rows = 2 if step_seconds else 1
    fig, axes = plt.subplots(rows, len(metrics), figsize=(5.5 * len(metrics), 4.3 * rows), squeeze=False)
    for k, v in enumerate(study.variants):
        for seed, run in sorted(runs.get(v.label, {}).items()):
            ls = '-' if seed == min(runs[v.label]) else '--'
            for j, m in enumerate(metrics):
                if step_seconds and v.label in step_seconds:
                    pts = quality_vs_time(run['val'], m, step_seconds[v.label])
                    if pts:
                        axes[0][j].plot([t / 60 for t, _ in pts], [y for _, y in pts], marker='o', ms=3,
                                        color=f'C{k}', ls=ls,
                                        label=f'{v.label} s{seed} ({step_seconds[v.label]:.3f} s/it)')
                cum = train_seconds(run['train'])
                logged = [(seconds_at(int(r['step']), cum), num(r.get(m))) for r in run['val'] if int(r['step']) > 0]
                logged = [(t, y) for t, y in logged if math.isfinite(t) and math.isfinite(y)]
                if logged:
                    axes[-1][j].plot([t / 60 for t, _ in logged], [y for _, y in logged], marker='o', ms=3,
                                     color=f'C{k}', ls=ls, label=f'{v.label} s{seed} ({_load_label(run)})')
    if step_seconds:
        for j, m in enumerate(metrics):
            horizon, _ = equal_time({v.label: runs.get(v.label, {}) for v in study.variants}, step_seconds, m)
            if math.isfinite(horizon):
                axes[0][j].axvline(horizon / 60, color='0.5', lw=0.8, ls=':', label='equal time')
    for i, row in enumerate(axes):
        for ax, m in zip(row, metrics):
            measured = bool(step_seconds) and i == 0
            ax.set_xlabel('iterations × measured s/it (min)' if measured else
                          'logged training wall-clock under load (min, validation excluded)')
            ax.set_ylabel(names.get(m, m))
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(study.name + ('\ntop: iterations × s/it measured interleaved in one process; bottom: logged '
                               'wall-clock (depends on the load)' if step_seconds else
                               ' (logged wall-clock, under load)'))
    return _save(fig, out_png)


def epoch_means(train_rows: list[dict], iters_per_epoch: int, key: str) -> list[tuple[int, float]]:
    """``[(epoch, mean of key over the logged rows of that epoch)]`` (epoch 1 = iterations 1..iters_per_epoch)."""
    out: dict[int, list[float]] = {}
    for r in train_rows:
        x = num(r.get(key))
        if math.isfinite(x):
            out.setdefault((int(r['step']) - 1) // iters_per_epoch + 1, []).append(x)
    return [(e, sum(v) / len(v)) for e, v in sorted(out.items())]


def plot_epoch_curves(series: dict[str, dict], out_png: str, keys: tuple[str, str] = ('loss_nll', 'loss_vf'),
                      titles: Optional[tuple[str, str]] = None) -> str:
    """Fig. 5a: per-epoch training reconstruction loss and VF loss, one line per model (``name -> {'rows': train
    rows, 'ipe': iterations per epoch}``); families share a colour, sizes a line style."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    families = sorted({n.split('_')[0] for n in series})
    styles = ['-', '--', '-.', ':', (0, (1, 1))]
    sizes = ('tiny', 'base', 'large', 'huge', 'giant')
    for name, s in sorted(series.items()):
        fam, _, size = name.partition('_')
        for ax, key in zip(axes, keys):
            pts = epoch_means(s['rows'], s['ipe'], key)
            if pts:
                ax.plot(*zip(*pts), marker='o', ms=3, color=f'C{families.index(fam)}',
                        ls=styles[sizes.index(size) % len(styles)] if size in sizes else '-', label=name)
    for ax, key, t in zip(axes, keys, titles or keys):
        ax.set_xlabel('epoch')
        ax.set_ylabel(f'train {t} (epoch mean)')
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle('Fig. 5(a): per-epoch training curves per family and size')
    return _save(fig, out_png)
