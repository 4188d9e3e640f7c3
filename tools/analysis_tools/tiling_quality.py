"""Tiled vs whole-image reconstruction quality: PSNR of each against the photo, their difference, and a seam check.

For every photo (resized on its short side and centre-cropped to ``--size``) and every ``(tile, overlap)`` setting it
reconstructs the image once whole and once tiled (``transvae.apis.reconstruct``), optionally tiling only the
encoder or only the decoder (``--part``) to tell which half is responsible for a difference.

Seam check: the mean absolute error in a band of ``--band`` pixels around every tile border divided by the mean
absolute error elsewhere. A visible seam raises this ratio for the tiled reconstruction above the whole-image one
(same pixels, same photo), so the report gives ``seam_ratio_tiled / seam_ratio_whole`` (1.0 = no seam).

Example (the figures in the performance notes)::

    python tools/analysis_tools/tiling_quality.py configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py \\
        work_dirs/demo/iter_1171.pth --size 1024 --tiles 256 512 --out work_dirs/benchmark/tiling_quality.json
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import sys
import time

import numpy as np
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)

IMG_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', default=None, help='random weights if absent (only useful as a smoke test)')
    p.add_argument('--photos', default=osp.join(REPO, 'data/sample_photos/val'), help='folder searched recursively')
    p.add_argument('--num-photos', type=int, default=3, help='first N photos in sorted path order (0: all)')
    p.add_argument('--size', type=int, default=1024)
    p.add_argument('--tiles', type=int, nargs='+', default=[256, 512], help='tile sizes in pixels')
    p.add_argument('--overlaps', type=int, nargs='*', default=None,
                   help='overlap per tile size in pixels (default: the API default, a quarter of the tile)')
    p.add_argument('--part', choices=['both', 'encode', 'decode'], default='both', help='which half is tiled')
    p.add_argument('--blend', choices=['linear', 'cosine'], default='linear')
    p.add_argument('--band', type=int, default=2, help='half-width in pixels of the seam band')
    p.add_argument('--preset', default=None, help='config preset (e.g. cpu) used when the checkpoint was trained')
    p.add_argument('--out', default=None, help='JSON report (a Markdown table is written beside it)')
    return p.parse_args(argv)


def load_photo(path: str, size: int) -> torch.Tensor:
    """``(3, size, size)`` in [0, 1] through the test pipeline's transforms: decode, resize the short side to
    ``size`` (bicubic), centre crop."""
    from transvae.datasets.transforms import CenterCrop, LoadImageRGB, ResizeShortSide
    results: dict | None = dict(img_path=path)
    for t in (LoadImageRGB(), ResizeShortSide(size, interpolation='bicubic'), CenterCrop(size)):
        results = t(results)
        if results is None:
            raise SystemExit(f'cannot decode {path}')
    return torch.from_numpy(results['img'].copy()).permute(2, 0, 1).float() / 255.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of one ``(1, 3, H, W)`` pair in [0, 1], uint8-quantised (the benchmark's metric)."""
    from transvae.evaluation.functional import psnr as psnr_batch
    return float(psnr_batch(a, b)[0])


def tile_edges(size: int, tile: int, overlap: int) -> list[int]:
    """Interior pixel positions where a tile starts or ends (the candidate seams)."""
    from transvae.apis.tiling import tile_starts
    starts = tile_starts(size, tile, tile - overlap)
    return sorted({e for s in starts for e in (s, s + tile) if 0 < e < size})


def seam_ratio(err: torch.Tensor, edges: list[int], band: int) -> float:
    """Mean of ``err`` ``(H, W)`` within ``band`` px of any edge row / column over its mean elsewhere."""
    h, w = err.shape
    mask = torch.zeros(h, w, dtype=torch.bool)
    for e in edges:
        mask[max(0, e - band):e + band, :] = True
        mask[:, max(0, e - band):e + band] = True
    if mask.all() or not mask.any():
        return float('nan')
    return (err[mask].mean() / err[~mask].mean().clamp_min(1e-12)).item()


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from transvae.apis import decode, encode, init_model
    from transvae.apis.inference import _resolve_tile
    from transvae.utils.allocator import tune_cpu_allocator
    if not torch.cuda.is_available():
        tune_cpu_allocator()
    model = init_model(args.config, args.checkpoint, preset=args.preset)
    paths = sorted(p for p in glob.glob(osp.join(args.photos, '**', '*'), recursive=True)
                   if p.lower().endswith(IMG_EXTS))
    if args.num_photos:
        paths = paths[:args.num_photos]
    if not paths:
        raise SystemExit(f'no images under {args.photos}')
    overlaps = args.overlaps or [None] * len(args.tiles)
    if len(overlaps) != len(args.tiles):
        raise SystemExit('--overlaps needs one value per --tiles value')
    shape = (1, 3, args.size, args.size)
    settings = [(t,) + _resolve_tile(model, shape, t, ov, None, 'decode')[1:] for t, ov in zip(args.tiles, overlaps)]
    report: dict = dict(config=args.config, checkpoint=args.checkpoint, size=args.size, part=args.part,
                        blend=args.blend, band_px=args.band, command=' '.join(sys.argv), photos={})
    for path in paths:
        name = osp.relpath(path, args.photos)
        x = load_photo(path, args.size)[None]
        t0 = time.perf_counter()
        post = encode(model, x)
        whole = decode(model, post.mode(), out_size=x.shape[-2:])
        entry = dict(psnr_whole=psnr(whole, x), time_whole_s=time.perf_counter() - t0, tiled={})
        err_whole = (whole - x).abs().mean(1)[0]
        for tile, ov in settings:
            t0 = time.perf_counter()
            enc_tile = tile if args.part in ('both', 'encode') else None
            dec_tile = tile if args.part in ('both', 'decode') else None
            z = encode(model, x, tile=enc_tile, overlap=ov if enc_tile else None, blend=args.blend).mode()
            rec = decode(model, z, tile=dec_tile, overlap=ov if dec_tile else None, out_size=x.shape[-2:],
                         blend=args.blend)
            edges = tile_edges(args.size, tile, ov)
            err = (rec - x).abs().mean(1)[0]
            sr_t, sr_w = seam_ratio(err, edges, args.band), seam_ratio(err_whole, edges, args.band)
            psnr_tiled = psnr(rec, x)
            entry['tiled'][f'{tile}/{ov}'] = dict(
                tile=tile, overlap=ov, psnr_tiled=psnr_tiled, psnr_delta_db=psnr_tiled - entry['psnr_whole'],
                psnr_tiled_vs_whole=psnr(rec, whole), seam_ratio_tiled=sr_t, seam_ratio_whole=sr_w,
                seam_ratio_tiled_over_whole=sr_t / sr_w, time_s=time.perf_counter() - t0)
        report['photos'][name] = entry
        print(name, json.dumps({k: round(v['psnr_delta_db'], 3) for k, v in entry['tiled'].items()}), flush=True)
    summary = {}
    for tile, ov in settings:
        k = f'{tile}/{ov}'
        rows = [e['tiled'][k] for e in report['photos'].values()]
        summary[k] = dict(mean_psnr_delta_db=float(np.mean([r['psnr_delta_db'] for r in rows])),
                          worst_psnr_delta_db=float(min(r['psnr_delta_db'] for r in rows)),
                          max_seam_ratio_tiled_over_whole=float(max(r['seam_ratio_tiled_over_whole'] for r in rows)))
    report['summary'] = summary
    md = [f'Tiled vs whole reconstruction at {args.size}² ({args.part} tiled, {args.blend} blend), '
          f'{len(paths)} photos, `{args.checkpoint}`', '',
          '| photo | PSNR whole | ' + ' | '.join(f'tile {k}: PSNR / Δ dB / seam' for k in summary) + ' |',
          '|---|---|' + '---|' * len(summary)]
    for name, e in report['photos'].items():
        md.append(f"| {name} | {e['psnr_whole']:.2f} | " + ' | '.join(
            f"{v['psnr_tiled']:.2f} / {v['psnr_delta_db']:+.2f} / {v['seam_ratio_tiled_over_whole']:.3f}"
            for v in e['tiled'].values()) + ' |')
    report['markdown'] = '\n'.join(md)
    print(report['markdown'])
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as fh:
            json.dump(report, fh, indent=1)
        with open(osp.splitext(args.out)[0] + '.md', 'w') as fh:
            fh.write(report['markdown'] + '\n')
    return report


if __name__ == '__main__':
    main()
