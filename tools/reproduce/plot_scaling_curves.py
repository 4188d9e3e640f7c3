"""Fig. 5: final val PSNR and val reconstruction loss vs parameter count (5b), per-epoch training curves (5a).

Reads the work dirs written by ``train_all_scales.sh`` (``ROOT/<family>_<size>/seed_S/``): the val and train scalars
and the config that was trained (the dumped ``<name>.py`` in the work dir, so ``--preset cpu`` micro widths are counted as trained;
``--params-from config`` counts the paper-scale experiment config instead). Parameters (encoder + decoder) come from
``transvae.utils.complexity.count_params_meta(cfg)`` on the meta device.

    PYTHONPATH=. .venv/bin/python tools/reproduce/plot_scaling_curves.py --root work_dirs/reproduce/scaling

Writes ``ROOT/scaling.png`` (PSNR | val loss | the paper's Fig. 5b PSNR for reference), ``ROOT/scaling.csv``,
``ROOT/scaling.md`` and ``ROOT/epoch_curves.png`` (Fig. 5a: per-epoch mean of the training reconstruction loss
``loss_nll`` and VF loss ``loss_vf`` per family and size; an epoch = the config's validation interval, one ImageNet
epoch in the scaling schedule, unless ``--iters-per-epoch`` says otherwise).
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import os.path as osp
import sys

from projects.paper_studies.paper_studies.logs import CLAIM_METRIC, collect, num
from projects.paper_studies.paper_studies.plots import plot_epoch_curves
from projects.paper_studies.paper_studies.study import EXP_DIR, Variant


def _fmt(v, nd: int = 4) -> str:
    return '—' if not math.isfinite(num(v)) else f'{num(v):.{nd}f}'

FAMILIES = ('cnn', 'vit', 'swin', 'transvae')
SIZES = ('tiny', 'base', 'large', 'huge', 'giant')
# PAPER.md §2 "Scaling result" (Fig. 5b): single-image PSNR after 3 epochs; totals from the paper's tables (M).
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


def params_of(work_dir: str, name: str, source: str) -> float:
    """Encoder + decoder parameters (count) of the trained config (or the experiment config)."""
    from mmengine.config import Config

    from transvae.apis import register_all_modules
    from transvae.utils.complexity import count_params_meta
    register_all_modules()
    path = None
    if source == 'workdir':
        dumped = sorted(glob.glob(osp.join(work_dir, 'seed_*', '*.py')))
        path = dumped[0] if dumped else None
    if path is None:
        path = osp.join(EXP_DIR, 'scaling', name + '.py')
    enc, dec = count_params_meta(Config.fromfile(path))
    return float(enc + dec)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='work_dirs/reproduce/scaling')
    parser.add_argument('--params-from', choices=['workdir', 'config'], default='workdir',
                        help='count the trained (dumped) config or the paper-scale experiment config')
    parser.add_argument('--iters-per-epoch', type=int, default=None,
                        help='Fig. 5a epoch length (default: each run\'s validation interval)')
    args = parser.parse_args(argv)
    root = osp.abspath(args.root)
    rows, series = [], {}
    for fam in FAMILIES:
        for i, size in enumerate(SIZES):
            name = f'{fam}_{size}'
            wd = osp.join(root, name)
            if not osp.isdir(wd):
                continue
            runs = collect([Variant(name, osp.join(EXP_DIR, 'scaling', name + '.py'))], root)[name]
            if not runs or not runs[min(runs)]['val']:
                continue
            run = runs[min(runs)]
            last = run['val'][-1]
            s = dict(final_step=last['step'], final_psnr=num(last.get('psnr')), final_lpips=num(last.get('lpips')),
                     final_rec_loss=num(last.get(CLAIM_METRIC)))
            series[name] = dict(rows=run['train'], ipe=args.iters_per_epoch or _val_interval(wd, min(runs)))
            try:
                n = params_of(wd, name, args.params_from)
            except Exception as e:  # noqa: BLE001
                print(f'{name}: parameter count failed ({e}); skipped', file=sys.stderr)
                continue
            rows.append(dict(family=fam, size=size, name=name, params=n, step=s['final_step'],
                             psnr=s['final_psnr'], rec_loss=s['final_rec_loss'], lpips=s['final_lpips'],
                             paper_psnr=PAPER_PSNR[fam][i], paper_params_m=PAPER_PARAMS_M[fam][i]))
    if not rows:
        raise SystemExit(f'no finished scaling work dirs with val scalars under {root}')

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for fam in FAMILIES:
        fr = sorted((r for r in rows if r['family'] == fam), key=lambda r: r['params'])
        if fr:
            xs = [r['params'] / 1e6 for r in fr]
            axes[0].plot(xs, [r['psnr'] for r in fr], marker='o', label=fam)
            pts = [(x, r['rec_loss']) for x, r in zip(xs, fr) if math.isfinite(r['rec_loss'])]
            if pts:
                axes[1].plot(*zip(*pts), marker='o', label=fam)
        axes[2].plot(PAPER_PARAMS_M[fam], PAPER_PSNR[fam], marker='s', ls='--', label=fam)
    axes[0].set_ylabel('final val PSNR (dB)')
    axes[1].set_ylabel('final val rec loss (L1 + LPIPS-vgg)')
    axes[2].set_ylabel('paper Fig. 5b PSNR (dB), 3 epochs ImageNet')
    for ax in axes:
        ax.set_xscale('log')
        ax.set_xlabel('parameters, encoder + decoder (M)')
        ax.grid(alpha=0.3, which='both')
        ax.legend(fontsize=8)
    axes[0].set_title('measured')
    axes[1].set_title('measured')
    axes[2].set_title('paper (reference)')
    fig.tight_layout()
    fig.savefig(osp.join(root, 'scaling.png'), dpi=120)
    plt.close(fig)

    cols = ['family', 'size', 'name', 'params', 'step', 'psnr', 'rec_loss', 'lpips', 'paper_psnr', 'paper_params_m']
    with open(osp.join(root, 'scaling.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    lines = ['# Fig. 5: scaling', '', '| model | params (M) | final step | val PSNR | val rec loss | paper PSNR | '
             'paper params (M) |', '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["name"]} | {r["params"] / 1e6:.2f} | {r["step"]} | {_fmt(r["psnr"], 2)} | '
                     f'{_fmt(r["rec_loss"])} | {r["paper_psnr"]} | {r["paper_params_m"]} |')
    lines.append('')
    for fam in FAMILIES:
        ps = [r['psnr'] for r in sorted((r for r in rows if r['family'] == fam), key=lambda r: r['params'])]
        if len(ps) > 1:
            mono = all(b >= a for a, b in zip(ps, ps[1:]))
            lines.append(f'- {fam}: PSNR {"monotonic" if mono else "not monotonic"} in size '
                         f'(paper: {"monotonic" if fam in ("cnn", "transvae") else "not monotonic"}).')
    epoch_png = plot_epoch_curves(series, osp.join(root, 'epoch_curves.png'), titles=('reconstruction loss (L1 + '
                                  'LPIPS NLL)', 'VF loss'))
    lines += ['', f'Fig. 5(a) per-epoch training curves: {osp.basename(epoch_png)}.']
    text = '\n'.join(lines) + '\n'
    with open(osp.join(root, 'scaling.md'), 'w') as f:
        f.write(text)
    print(text)


def _val_interval(work_dir: str, seed: int) -> int:
    """The validation interval of the config dumped in a run (one epoch in the scaling schedule)."""
    from mmengine.config import Config
    dumped = sorted(glob.glob(osp.join(work_dir, f'seed_{seed}', '*.py')))
    if not dumped:
        raise FileNotFoundError(f'no dumped config in {work_dir}/seed_{seed}; pass --iters-per-epoch')
    return int(Config.fromfile(dumped[0]).train_cfg.get('val_interval', 1))


if __name__ == '__main__':
    main()
