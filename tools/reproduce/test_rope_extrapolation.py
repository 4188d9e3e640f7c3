"""Fig. 3(a): RoPE vs APE models trained at 64² reconstructing held-out photos at 64 / 128 / 256 / 512.

Reads the Fig. 3(b) study's work dirs (``--root``, variants ``pe_rope`` and ``pe_ape``, every finished seed), or
explicit ``--ckpt LABEL=WORKDIR_OR_PTH`` pairs. Photos smaller than a crop are upscaled (counted in the table),
larger ones are not downscaled; every image is reconstructed whole.

    PYTHONPATH=. .venv/bin/python tools/reproduce/test_rope_extrapolation.py \
        --root work_dirs/reproduce/position_encoding

Writes under ``--out`` (default ``ROOT/extrapolation``): ``psnr.md``, ``psnr.csv`` (mean PSNR / SSIM per model,
seed and resolution; seed mean and spread) and ``picture.png`` (one photo at ``--picture-resolutions``, rows =
input / each model, its PSNR under each reconstruction).
"""
import argparse
import csv
import glob
import os
import os.path as osp

from projects.paper_studies.paper_studies.photos import resolve_checkpoint, val_photo_paths
from projects.paper_studies.paper_studies.pictures import extrapolation, extrapolation_picture, mean_over_seeds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='work_dirs/reproduce/position_encoding')
    parser.add_argument('--labels', nargs='+', default=['pe_rope', 'pe_ape'])
    parser.add_argument('--ckpt', nargs='+', default=None, metavar='LABEL=PATH', help='instead of --root')
    parser.add_argument('--resolutions', type=int, nargs='+', default=[64, 128, 256, 512])
    parser.add_argument('--picture-resolutions', type=int, nargs='+', default=[64, 256, 512])
    parser.add_argument('--picture-image', type=int, default=0, help='index of the held-out photo pictured')
    parser.add_argument('--num-images', type=int, default=None, help='held-out photos used (default all)')
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    models = []
    if args.ckpt:
        for item in args.ckpt:
            label, _, path = item.partition('=')
            models.append((label, 0, *resolve_checkpoint(path)))
    else:
        for label in args.labels:
            for wd in sorted(glob.glob(osp.join(args.root, label, 'seed_*'))):
                if osp.isfile(osp.join(wd, 'done.json')):
                    models.append((label, int(wd.rsplit('_', 1)[1]), *resolve_checkpoint(wd)))
    if not models:
        parser.error(f'no finished runs of {args.labels} under {args.root}')
    out = args.out or osp.join(args.root, 'extrapolation')
    os.makedirs(out, exist_ok=True)
    paths = val_photo_paths(num=args.num_images)
    res = sorted(set(args.resolutions) | set(args.picture_resolutions))
    rows, recs = extrapolation(models, res, paths)
    with open(osp.join(out, 'psnr.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    labels = list(dict.fromkeys(m[0] for m in models))
    agg = mean_over_seeds(rows)
    lines = ['# Fig. 3(a): held-out PSNR (dB) at sizes larger than the 64² training crops', '',
             'Mean over the finished seeds ± half their range; whole-image reconstruction.', '',
             '| model | ' + ' | '.join(f'{r}²' for r in res) + ' |', '|---|' + '---|' * len(res)]
    for label in labels:
        cells = [f'{agg[(label, r)][0]:.2f} ± {agg[(label, r)][1] / 2:.2f} ({agg[(label, r)][2]} seeds)'
                 for r in res]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    ups = {r: next(x['n_upscaled'] for x in rows if x['resolution'] == r) for r in res}
    lines += ['', f'{len(paths)} held-out photos; upscaled to fit the crop: '
              + ', '.join(f'{r}²: {u}' for r, u in ups.items())]
    text = '\n'.join(lines) + '\n'
    with open(osp.join(out, 'psnr.md'), 'w') as f:
        f.write(text)
    print(text)
    seed = min(m[1] for m in models)
    name = osp.basename(osp.dirname(paths[args.picture_image]))
    print('picture:', extrapolation_picture(recs, labels, seed, args.picture_resolutions, args.picture_image,
                                            osp.join(out, 'picture.png'), name))


if __name__ == '__main__':
    main()
