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


def plot_time_to_quality(study: Study, runs: dict, out_png: str) -> str:
    """Held-out PSNR and LPIPS-alex against cumulative training wall-clock (validation excluded), per seed."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for k, v in enumerate(study.variants):
        for seed, run in sorted(runs.get(v.label, {}).items()):
            cum = train_seconds(run['train'])
            pts = [(seconds_at(int(r['step']), cum), r) for r in run['val'] if int(r['step']) > 0]
            pts = [(t, r) for t, r in pts if math.isfinite(t)]
            if not pts:
                continue
            for ax, m in zip(axes, ('psnr', 'lpips')):
                ax.plot([t / 60 for t, _ in pts], [num(r.get(m)) for _, r in pts], marker='o', ms=3,
                        color=f'C{k}', ls='-' if seed == 0 else '--', label=f'{v.label} seed {seed}')
    for ax, name in zip(axes, ('held-out PSNR (dB)', 'held-out LPIPS-alex')):
        ax.set_xlabel('training wall-clock (min, validation excluded)')
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(study.name)
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
