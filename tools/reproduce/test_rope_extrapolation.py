"""Fig. 3(a): reconstruct at resolutions larger than the training one (RoPE extrapolates, APE is interpolated).

Each ``--ckpt`` is a work dir (its dumped config and last checkpoint, or ``--step``) or a ``.pth`` (+ ``--config``,
else the dumped config next to it). Every val photo is center-cropped at each resolution (photos smaller than the
crop are bicubic-upscaled first; counted in the table) and reconstructed whole (no tiling).

    python tools/reproduce/test_rope_extrapolation.py --ckpt work_dirs/reproduce/position_encoding/pe_rope \\
        --ckpt work_dirs/reproduce/position_encoding/pe_ape --label RoPE --label APE --resolutions 64 128 256 512

Writes ``--out`` (default ``work_dirs/reproduce/rope_extrapolation``): ``psnr.md``, ``psnr.csv`` (mean PSNR / SSIM
per model and resolution) and ``grid.png`` (one photo, rows = input + each model, columns = resolutions).
"""
import argparse
import csv
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import center_crop_photo, load_model, resolve_checkpoint, val_photo_paths  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ckpt', action='append', required=True, help='work dir or .pth (repeat for 2+ models)')
    parser.add_argument('--config', action='append', default=None, help='config per --ckpt (same order)')
    parser.add_argument('--label', action='append', default=None, help='name per --ckpt (same order)')
    parser.add_argument('--step', type=int, default=None, help='use iter_{step}.pth of each work dir')
    parser.add_argument('--preset', default=None, help='preset for an undumped experiment --config (e.g. cpu)')
    parser.add_argument('--resolutions', type=int, nargs='+', default=[64, 128, 256, 512])
    parser.add_argument('--num-images', type=int, default=None, help='val photos used (default all)')
    parser.add_argument('--grid-image', type=int, default=0, help='index of the photo shown in grid.png')
    parser.add_argument('--out', default='work_dirs/reproduce/rope_extrapolation')
    args = parser.parse_args(argv)

    import torch

    from transvae.apis import reconstruct
    from transvae.evaluation.functional.image_quality import psnr, ssim
    n = len(args.ckpt)
    configs = args.config or [None] * n
    labels = args.label or [osp.basename(osp.normpath(c)) for c in args.ckpt]
    if len(configs) != n or len(labels) != n:
        parser.error('--config / --label must be given once per --ckpt')
    os.makedirs(args.out, exist_ok=True)
    paths = val_photo_paths(num=args.num_images)
    crops = {r: [center_crop_photo(p, r) for p in paths] for r in args.resolutions}
    rows, grid = [], {}
    from tqdm import tqdm
    for label, ck, cf in zip(labels, args.ckpt, configs):
        cfg, ckpt = resolve_checkpoint(ck, cf, args.step)
        model = load_model(cfg, ckpt, args.preset)
        for r in tqdm(args.resolutions, desc=label, unit='res'):
            ps, ss = [], []
            for i, (x, _) in enumerate(crops[r]):
                with torch.no_grad():
                    y = reconstruct(model, x).clamp(0, 1)
                ps.append(float(psnr(y[None], x[None])[0]))
                ss.append(float(ssim(y[None], x[None])[0]))
                if i == args.grid_image:
                    grid[(label, r)] = y
            rows.append(dict(model=label, resolution=r, psnr=sum(ps) / len(ps), ssim=sum(ss) / len(ss),
                             n_images=len(ps), n_upscaled=sum(u for _, u in crops[r]), checkpoint=ckpt))
    with open(osp.join(args.out, 'psnr.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    res = args.resolutions
    lines = ['# RoPE extrapolation (Fig. 3a): mean PSNR (dB) / SSIM on center crops of the val photos', '',
             '| model | ' + ' | '.join(f'{r}²' for r in res) + ' |', '|---|' + '---|' * len(res)]
    for label in labels:
        cells = [next(f'{x["psnr"]:.2f} / {x["ssim"]:.3f}' for x in rows
                      if x['model'] == label and x['resolution'] == r) for r in res]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    ups = {r: next(x['n_upscaled'] for x in rows if x['resolution'] == r) for r in res}
    lines += ['', f'{len(paths)} val photos; upscaled to fit the crop: '
              + ', '.join(f'{r}²: {u}' for r, u in ups.items())]
    text = '\n'.join(lines) + '\n'
    with open(osp.join(args.out, 'psnr.md'), 'w') as f:
        f.write(text)
    print(text)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1 + n, len(res), figsize=(2.6 * len(res), 2.6 * (1 + n)), squeeze=False)
    for c, r in enumerate(res):
        axes[0][c].imshow(crops[r][args.grid_image][0].permute(1, 2, 0).numpy())
        axes[0][c].set_title(f'{r}x{r}')
        for k, label in enumerate(labels):
            axes[k + 1][c].imshow(grid[(label, r)].permute(1, 2, 0).cpu().numpy())
            p = next(x['psnr'] for x in rows if x['model'] == label and x['resolution'] == r)
            axes[k + 1][c].set_xlabel(f'mean PSNR {p:.2f}', fontsize=8)
    for k, name in enumerate(['input'] + labels):
        axes[k][0].set_ylabel(name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(osp.join(args.out, 'grid.png'), dpi=110)
    plt.close(fig)
    print(f'grid: {osp.join(args.out, "grid.png")}')


if __name__ == '__main__':
    main()
