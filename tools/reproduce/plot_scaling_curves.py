"""Fig. 5: final held-out quality against parameters and against training FLOPs, the slope of each family, and the
verdict on "TransVAE improves more with size than CNN-VAE".

Reads the work dirs written by ``train_all_scales.sh`` (``ROOT/<family>_<size>/seed_S/``): the final validation
values, ``per_photo.json`` and the config each run dumped (what was trained). Parameters (encoder + decoder):
``count_params_meta``; training FLOPs: the benchmark's counter on one step of the dumped config (batch, crop size;
model, losses, optimizer), times the iterations run (``projects/paper_studies/paper_studies/scaling.py``).

    PYTHONPATH=. .venv/bin/python tools/reproduce/plot_scaling_curves.py --root work_dirs/reproduce/scaling_cpu \\
        --out work_dirs/reproduce/scaling_cpu/scaling_cpu.png

Per family: the least-squares slope of each metric against log10(parameters) on the seed means, and, for the claim,
the paired bootstrap (seeds and held-out photos resampled) of the per-seed, per-photo slope difference TransVAE -
CNN-VAE of L1 + LPIPS-vgg. No trend is stated for a family whose runs have equal parameter counts (the tool says so
and draws no line through them). Writes the figure (``--out``, default ``ROOT/scaling.png``), ``ROOT/scaling.csv``,
``ROOT/scaling.md`` and ``ROOT/epoch_curves.png`` (Fig. 5a: per-epoch training loss per model; an epoch = the
config's validation interval unless ``--iters-per-epoch`` says otherwise).
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import os.path as osp
import sys

from projects.paper_studies.paper_studies.logs import CLAIM_METRIC, collect, num
from projects.paper_studies.paper_studies.plots import plot_epoch_curves
from projects.paper_studies.paper_studies.scaling import (SCALING_METRICS, TrendRefused, check_sizes_distinct,
                                                          collect_scaling, family_means, family_of, family_slope,
                                                          size_of, slope_claim)
from projects.paper_studies.paper_studies.study import EXP_DIR, Variant

# PAPER.md §2 "Scaling result" (Fig. 5b): single-image PSNR after 3 epochs; totals from the paper's tables (M).
PAPER_SIZES = ('tiny', 'base', 'large', 'huge', 'giant')
PAPER_PSNR = {
    'vit': (20.9, 24.2, 26.6, 26.5, 26.0),
    'cnn': (26.8, 27.0, 27.9, 28.1, 28.4),
    'swin': (26.3, 26.1, 26.8, 26.8, 26.7),
    'transvae': (27.2, 27.7, 28.0, 28.3, 28.7),
}
PAPER_PARAMS_M = {
    'vit': (51, 171, 605, 1400, 2500),
    'cnn': (70, 157, 703, 1100, 2500),
    'swin': (60, 157, 750, 1600, 2200),
    'transvae': (44, 140, 545, 1300, 2300),
}
CLAIM = 'TransVAE improves more with size than CNN-VAE'


def _fmt(v, nd: int = 4) -> str:
    return '—' if not math.isfinite(num(v)) else f'{num(v):.{nd}f}'


def trend_lines(runs, families) -> tuple[list[str], dict, dict]:
    """Markdown lines of each family's slopes (or the refusal), ``{family: {metric: slope}}`` and
    ``{family: refusal message}``."""
    lines, slopes, refused = [], {}, {}
    for fam in families:
        try:
            check_sizes_distinct(runs, fam)
        except TrendRefused as e:
            refused[fam] = str(e)
            lines.append(f'- **{fam}: no trend.** {e}')
            continue
        slopes[fam] = {m: family_slope(runs, fam, m) for m, _, _ in SCALING_METRICS}
        lines.append(f'- {fam}: slope per decade of parameters (seed means): '
                     + ', '.join(f'{m} {slopes[fam][m]:+.4f}' for m, _, _ in SCALING_METRICS))
    return lines, slopes, refused


def claim_line(runs, refused: dict) -> str:
    """The verdict on :data:`CLAIM` (or why there is none)."""
    if 'transvae' in refused or 'cnn' in refused:
        return f'- {CLAIM}: **no verdict**: ' + ' '.join(refused[f] for f in ('transvae', 'cnn') if f in refused)
    fams = {r.family for r in runs}
    if not {'transvae', 'cnn'} <= fams:
        return f'- {CLAIM}: **no verdict**: runs of both families are needed (have {sorted(fams)})'
    j = slope_claim(runs)
    if j.interval is None:
        return f'- {CLAIM}: **{j.verdict}**: {j.detail}'
    iv = j.interval
    return (f'- {CLAIM} (slope of {CLAIM_METRIC} per decade of parameters, TransVAE − CNN-VAE; paired bootstrap over '
            f'{iv.n_seeds} seeds x {iv.n_photos} photos, 95%): **{j.detail}**')


def segment_lines(runs, refused: dict) -> list[str]:
    """The claim judged on each pair of consecutive sizes (ordered by TransVAE's parameters), when there are
    more than two: a slope over all sizes can hide a change of direction between the smaller and the larger ones."""
    if 'transvae' in refused or 'cnn' in refused:
        return []
    order = sorted({size_of(r.name) for r in runs if r.family == 'transvae'},
                   key=lambda sz: min(r.params for r in runs if r.family == 'transvae' and size_of(r.name) == sz))
    if len(order) < 3:
        return []
    lines = []
    for lo, hi in zip(order, order[1:]):
        j = slope_claim([r for r in runs if size_of(r.name) in (lo, hi)])
        where = ('' if j.interval is None
                 else f' (paired bootstrap over {j.interval.n_seeds} seeds x {j.interval.n_photos} photos)')
        lines.append(f'  - {lo} -> {hi}{where}: **{j.detail}**')
    return ['- the same claim per pair of consecutive sizes:', *lines]


def plot(runs, slopes: dict, out_png: str, title_note: str = '') -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np
    fams = sorted({r.family for r in runs})
    fig, axes = plt.subplots(2, 4, figsize=(21, 9))
    colours = {f: f'C{i}' for i, f in enumerate(('transvae', 'cnn', 'vit', 'swin'))}
    for col, (metric, label, _) in enumerate(SCALING_METRICS):
        for row, (xkey, xlabel) in enumerate((('params', 'parameters, encoder + decoder (M)'),
                                              ('train_flops', 'training FLOPs (benchmark counter, TFLOP)'))):
            ax = axes[row, col]
            scale = 1e6 if xkey == 'params' else 1e12
            for fam in fams:
                c = colours.get(fam, 'k')
                pts = [(getattr(r, xkey) / scale, r.final.get(metric, math.nan)) for r in runs if r.family == fam]
                pts = [p for p in pts if math.isfinite(p[0]) and math.isfinite(p[1])]
                if pts:
                    ax.scatter(*zip(*pts), color=c, alpha=0.35, s=18)
                means = family_means(runs, fam, metric)
                xs = []
                for name, _, _, _ in means:
                    vals = [getattr(r, xkey) for r in runs if r.name == name]
                    xs.append(vals[0] / scale)
                ok = [(x, m) for x, (_, _, m, _) in zip(xs, means) if math.isfinite(x)]
                if not ok:
                    continue
                slope = slopes.get(fam, {}).get(metric)
                lab = fam + (f' (slope {slope:+.3f}/decade)' if slope is not None and xkey == 'params'
                             else '' if slope is not None else ' (no trend stated)')
                ax.plot(*zip(*ok), marker='o', color=c, label=lab, ls='-' if slope is not None else 'none')
                if slope is not None and xkey == 'params':
                    lx = np.log10([x for x, _ in ok])
                    b = float(np.mean([m for _, m in ok]) - slope * lx.mean())
                    grid = np.linspace(lx.min(), lx.max(), 20)
                    ax.plot(10 ** grid, b + slope * grid, color=c, ls=':', lw=1)
            ax.set_xscale('log')
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap within a decade
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3, which='both')
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    ax = axes[0, 3]
    for fam in PAPER_PSNR:
        ax.plot(PAPER_PARAMS_M[fam], PAPER_PSNR[fam], marker='s', ls='--', color=colours.get(fam, 'k'), label=fam)
    ax.set_xscale('log')
    ax.set_xlabel('parameters (M)')
    ax.set_ylabel('paper Fig. 5b PSNR (dB), 3 ImageNet epochs')
    ax.set_title('paper (reference)')
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=8)
    axes[1, 3].axis('off')
    axes[1, 3].text(0, 1, title_note, va='top', ha='left', fontsize=8, wrap=True, transform=axes[1, 3].transAxes)
    fig.suptitle('Fig. 5 (measured): final held-out quality vs size; points = seeds, lines = seed means')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='work_dirs/reproduce/scaling_cpu',
                        help='the work root of train_all_scales.sh (default work_dirs/reproduce/scaling_cpu)')
    parser.add_argument('--out', default=None, help='the figure (default ROOT/scaling.png)')
    parser.add_argument('--params-from', choices=['workdir', 'config'], default='workdir',
                        help='count the trained (dumped) config or the experiment config configs/experiments/scaling*')
    parser.add_argument('--no-flops', action='store_true',
                        help='do not count training FLOPs (the FLOP axes stay empty)')
    parser.add_argument('--iters-per-epoch', type=int, default=None,
                        help='Fig. 5a epoch length (default: each run\'s validation interval)')
    args = parser.parse_args(argv)
    root = osp.abspath(args.root)
    if not osp.isdir(root):
        print(f'error: no such work root: {root}', file=sys.stderr)
        return 2
    runs = collect_scaling(root, args.params_from, flops=not args.no_flops,
                           exp_dirs=(osp.join(EXP_DIR, 'scaling_cpu'), osp.join(EXP_DIR, 'scaling')))
    if not runs:
        print(f'error: no finished scaling runs with validation scalars under {root}', file=sys.stderr)
        return 2
    families = sorted({r.family for r in runs})
    lines_trend, slopes, refused = trend_lines(runs, families)
    verdict = claim_line(runs, refused)
    segments = segment_lines(runs, refused)
    out_png = osp.abspath(args.out or osp.join(root, 'scaling.png'))
    plot(runs, slopes, out_png, '\n'.join([*refused.values(), verdict.lstrip('- '), *segments]).replace('**', ''))

    cols = ['family', 'name', 'seed', 'params', 'train_flops', 'step', 'vgg/rec_loss', 'alex/rec_loss', 'psnr', 'ssim',
            'lpips', 'per_photo']
    with open(osp.join(root, 'scaling.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in runs:
            w.writerow([r.family, r.name, r.seed, int(r.params), r.train_flops, r.step,
                        *[r.final.get(k, '') for k in cols[6:11]], r.per_photo is not None])
    lines = ['# Fig. 5: scaling', '', f'Root `{root}`; figure `{out_png}`.', '',
             '| model | params (M) | training TFLOP | seeds | final step | L1 + LPIPS-vgg | PSNR (dB) | LPIPS-alex |',
             '|---|---|---|---|---|---|---|---|']
    for fam in families:
        for name, params in sorted({(r.name, r.params) for r in runs if r.family == fam}, key=lambda x: (x[1], x[0])):
            rs = [r for r in runs if r.name == name]
            cells = []
            for m, _, _ in SCALING_METRICS:
                vals = [r.final.get(m, math.nan) for r in rs]
                mean = sum(vals) / len(vals)
                half = (max(vals) - min(vals)) / 2
                cells.append(f'{_fmt(mean, 4 if m != "psnr" else 2)}' + (f' ± {_fmt(half, 4 if m != "psnr" else 2)}'
                                                                        if len(vals) > 1 else ''))
            lines.append(f'| {name} | {params / 1e6:.3f} | {_fmt(rs[0].train_flops / 1e12, 1)} | '
                         f'{sorted(r.seed for r in rs)} | {rs[0].step} | ' + ' | '.join(cells) + ' |')
    lines += ['', '(Final held-out values, mean ± half the seed range.)', '', *lines_trend, verdict, *segments]
    paper_names = [r.name for r in runs if size_of(r.name) in PAPER_SIZES]
    if paper_names:
        lines += ['', 'Paper Fig. 5b PSNR (3 ImageNet epochs) for the paper sizes: '
                  + ', '.join(f'{n} {PAPER_PSNR[family_of(n)][PAPER_SIZES.index(size_of(n))]}'
                              for n in sorted(set(paper_names)) if family_of(n) in PAPER_PSNR)]
    series = {}
    for name in sorted({r.name for r in runs}):
        seed = min(r.seed for r in runs if r.name == name)
        run = collect([Variant(name, name)], root)[name][seed]
        try:
            ipe = args.iters_per_epoch or _val_interval(osp.join(root, name), seed)
            series[name] = dict(rows=run['train'], ipe=ipe)
        except FileNotFoundError as e:
            print(f'{name}: {e}; left out of the epoch curves', file=sys.stderr)
    if series:
        epoch_png = plot_epoch_curves(series, osp.join(root, 'epoch_curves.png'),
                                      titles=('reconstruction loss (L1 + LPIPS NLL)', 'VF loss'))
        lines += ['', f'Fig. 5(a) per-epoch training curves: {osp.basename(epoch_png)}.']
    text = '\n'.join(lines) + '\n'
    with open(osp.join(root, 'scaling.md'), 'w') as f:
        f.write(text)
    print(text)
    return 0


def _val_interval(work_dir: str, seed: int) -> int:
    """The validation interval of the config dumped in a run (one epoch in the scaling schedule)."""
    from mmengine.config import Config
    dumped = sorted(glob.glob(osp.join(work_dir, f'seed_{seed}', '*.py')))
    if not dumped:
        raise FileNotFoundError(f'no dumped config in {work_dir}/seed_{seed}; pass --iters-per-epoch')
    return int(Config.fromfile(dumped[0]).train_cfg.get('val_interval', 1))


if __name__ == '__main__':
    raise SystemExit(main())
