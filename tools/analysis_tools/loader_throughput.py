"""Images per second per loader worker of the ImageNet training pipeline, full decode vs JPEG draft, and the workers
per GPU each recipe needs.

Example (the run reported in the README, "Data loading")::

    python tools/analysis_tools/loader_throughput.py --num-images 200 --passes 5 --compare-images 64 \
        --plan work_dirs/plans/*.json --json work_dirs/loader/loader.json

1. JPEGs of ImageNet's size distribution are made from the bundled photo set (``transvae.datasets.sample_photos``,
   built under ``--photo-root`` if missing): a random window of a photo, resized (bicubic) to a size drawn around
   ImageNet's mean of about 400 x 350 (short side log-normal, median ``--short-median`` px, sigma ``--short-sigma``;
   aspect 1 to 1.6, three in four landscape), saved at JPEG quality ``--quality`` (4:2:0) into ``--work-dir`` (a new
   temporary folder by default, removed at the end; never the repository).
2. The training pipeline of ``--config`` (``train_dataloader.dataset.pipeline``: decode, ResizeShortSide, RandomCrop,
   RandomFlip, PackVAEInputs; the real registered transforms) is run in this one process (= one loader worker,
   one thread) over the images, with its loader as :class:`LoadImageRGB` (full decode) and as
   :class:`LoadImageRGBDraft` (``min_size`` = the resize's size), interleaved pass by pass; images/s = images /
   wall time of a pass, median over ``--passes``.
3. The crops of the two decodes are compared over ``--compare-images`` images with the deterministic form of the
   pipeline (ResizeShortSide then CenterCrop, so both crops cover the same window): max / mean |diff| in uint8
   levels and PSNR, beside the error the JPEG compression itself made (PSNR of the decoded JPEG vs its source).
4. The rate each recipe needs: per-GPU images/s = per-GPU batch / step time, from run-planner JSON files
   (``tools/analysis_tools/plan_run.py CONFIG --gpus 8 --gpu-mem-gb 80 --amp bf16 --json OUT``: keys
   ``step_time_s``, ``per_gpu_batch``) or ``--step-time NAME=SECONDS:BATCH``; workers per GPU = ceil(needed / rate
   per worker).
"""
from __future__ import annotations

import argparse
import copy
import glob
import json
import math
import os
import os.path as osp
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = 'configs/_base_/datasets/imagenet.py'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from transvae.utils.cli_types import positive_int
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=DEFAULT_CONFIG, help='a config whose train_dataloader pipeline is measured')
    p.add_argument('--num-images', type=positive_int, default=200, help='JPEGs made and decoded per pass')
    p.add_argument('--passes', type=positive_int, default=5, help='timed passes per variant (median reported)')
    p.add_argument('--compare-images', type=positive_int, default=64, help='images of the crop comparison (>= 50)')
    p.add_argument('--quality', type=positive_int, default=90, help='JPEG quality of the made images')
    p.add_argument('--short-median', type=float, default=320.0, help='median short side of the made images (px)')
    p.add_argument('--short-sigma', type=float, default=0.3, help='log-normal sigma of the short side')
    p.add_argument('--photo-root', default='data/sample_photos', help='the bundled photo set (built if missing)')
    p.add_argument('--work-dir', default=None, help='where the JPEGs go (default: a new temporary folder, removed)')
    p.add_argument('--plan', nargs='*', default=[], help='run-planner JSON files (step_time_s, per_gpu_batch)')
    p.add_argument('--step-time', nargs='*', default=[], metavar='NAME=SECONDS:BATCH',
                   help='a recipe by hand: step time in seconds and per-GPU batch')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', help='write the results here')
    args = p.parse_args(argv)
    if args.compare_images > args.num_images:
        p.error(f'--compare-images ({args.compare_images}) must not exceed --num-images ({args.num_images})')
    return args


# ----------------------------------------------------------------------------------------------------------- images
def source_photos(photo_root: str) -> list[np.ndarray]:
    """One photo per source of the bundled set (the first frame of a video), largest first, as uint8 RGB."""
    from transvae.datasets.sample_photos import prepare_sample_photos
    root = osp.join(REPO, photo_root) if not osp.isabs(photo_root) else photo_root
    prepare_sample_photos(root)
    photos = []
    for src in sorted(glob.glob(osp.join(root, '*', '*'))):
        if osp.isdir(src):
            files = sorted(glob.glob(osp.join(src, '*.png')))
            if files:
                photos.append(np.asarray(Image.open(files[0]).convert('RGB')))
    return sorted(photos, key=lambda a: -a.shape[0] * a.shape[1])


def draw_size(rng: np.random.Generator, short_median: float, short_sigma: float,
              min_short: float = 96) -> tuple[int, int]:
    """``(w, h)``: log-normal short side (at least ``min_short``), aspect 1-1.6, three in four landscape."""
    short = float(np.clip(short_median * math.exp(rng.normal(0.0, short_sigma)), min_short, 2048))
    long = short * rng.uniform(1.0, 1.6)
    w, h = (long, short) if rng.random() < 0.75 else (short, long)
    return int(round(w)), int(round(h))


def make_jpegs(photos: list[np.ndarray], out_dir: str, n: int, quality: int, short_median: float,
               short_sigma: float, seed: int, min_short: float = 96, prefix: str = 'img') -> dict:
    """Write ``n`` JPEGs ``<prefix>_XXXX.jpg`` to ``out_dir``; returns their paths, sizes and the JPEG PSNR."""
    rng = np.random.default_rng(seed)
    paths, sizes, psnrs = [], [], []
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = draw_size(rng, short_median, short_sigma, min_short)
        ph, pw = photo.shape[:2]
        scale = min(pw / w, ph / h)  # largest window of the target aspect inside the photo
        cw, ch = max(1, int(w * scale)), max(1, int(h * scale))
        x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        src = Image.fromarray(photo[y0:y0 + ch, x0:x0 + cw]).resize((w, h), Image.BICUBIC)
        path = osp.join(out_dir, f'{prefix}_{i:04d}.jpg')
        src.save(path, quality=quality)
        paths.append(path)
        sizes.append((w, h))
        psnrs.append(psnr(np.asarray(src), np.asarray(Image.open(path).convert('RGB'))))
    ws, hs = np.array(sizes).T
    return dict(paths=paths, sizes=sizes, mean_w=float(ws.mean()), mean_h=float(hs.mean()),
                median_short=float(np.median(np.minimum(ws, hs))), jpeg_psnr_db_mean=float(np.mean(psnrs)),
                jpeg_psnr_db_min=float(np.min(psnrs)), mean_file_kb=float(np.mean([os.path.getsize(p) for p in paths])
                                                                          / 1024))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float('inf') if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


# ---------------------------------------------------------------------------------------------------------- pipeline
def pipelines(config: str) -> tuple[list[dict], list[dict], int]:
    """The config's training pipeline with a full-decode loader and with a draft loader, and the resize size."""
    from mmengine.config import Config
    from transvae.utils.errors import UserInputError
    cfg = Config.fromfile(osp.join(REPO, config) if not osp.isabs(config) else config)
    pipe = [dict(t) for t in cfg.train_dataloader.dataset.pipeline]
    resize = [t for t in pipe if t['type'] == 'ResizeShortSide']
    if not pipe or pipe[0]['type'] not in ('LoadImageRGB', 'LoadImageRGBDraft') or not resize:
        raise UserInputError(f'{config}: train pipeline {[t["type"] for t in pipe]} does not start with a loader and '
                             'resize the short side (LoadImageRGB[Draft], ResizeShortSide, ...): the draft decode '
                             'applies only to such a pipeline')
    size = int(resize[0]['size'])
    keep = {k: v for k, v in pipe[0].items() if k in ('cache_mb', 'max_pixels')}
    full = [dict(type='LoadImageRGB', **keep)] + pipe[1:]
    draft = [dict(type='LoadImageRGBDraft', min_size=size, **keep)] + pipe[1:]
    return full, draft, size


def build(pipe: list[dict]):
    from mmengine.dataset import Compose
    from transvae.registry import TRANSFORMS
    return Compose([TRANSFORMS.build(copy.deepcopy(t)) for t in pipe])


def time_pass(fn, paths: list[str]) -> float:
    t = time.perf_counter()
    for p in paths:
        out = fn(dict(img_path=p))
        if out is None:
            raise RuntimeError(f'the pipeline skipped {p}')
    return time.perf_counter() - t


def throughput(full: list[dict], draft: list[dict], paths: list[str], passes: int) -> dict:
    """Images/s of both pipelines, interleaved pass by pass (order alternating), after one warm-up pass each."""
    fns = {'full': build(full), 'draft': build(draft)}
    for fn in fns.values():
        time_pass(fn, paths[:16])
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(passes):
        for k in (('full', 'draft') if i % 2 == 0 else ('draft', 'full')):
            times[k].append(time_pass(fns[k], paths))
    out = {k: dict(images_per_s=len(paths) / statistics.median(v), pass_s=v) for k, v in times.items()}
    out['speedup_draft_over_full'] = statistics.median([a / b for a, b in zip(times['full'], times['draft'])])
    return out


def _crop_fn(loader: dict, size: int, interpolation: str = 'bicubic'):
    return build([loader, dict(type='ResizeShortSide', size=size, interpolation=interpolation),
                  dict(type='CenterCrop', size=size)])


def _diff_stats(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """max / mean |diff| (uint8 levels) and PSNR (dB; min and mean of the per-image values) of crop pairs."""
    if not pairs:
        return dict(n=0)
    ds = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in pairs]
    ps = [psnr(a, b) for a, b in pairs]
    finite = [p for p in ps if math.isfinite(p)]
    return dict(n=len(pairs), max_abs=int(max(int(d.max()) for d in ds)),
                mean_abs=float(np.mean([d.mean() for d in ds])),
                psnr_db_min=min(finite) if finite else float('inf'),
                psnr_db_mean=float(np.mean(finite)) if finite else float('inf'),
                n_bit_identical=sum(int(d.max() == 0) for d in ds))


def compare_crops(paths: list[str], size: int) -> dict:
    """Draft vs full decode through the deterministic pipeline ResizeShortSide(size) + CenterCrop(size), and, as the
    scale of what is a harmless difference, the same full decode resized with PIL's antialiased bilinear filter
    instead of the bicubic one (two standard antialiasing filters)."""
    full = _crop_fn(dict(type='LoadImageRGB'), size)
    draft = _crop_fn(dict(type='LoadImageRGBDraft', min_size=size), size)
    bilinear = _crop_fn(dict(type='LoadImageRGB'), size, 'bilinear')
    reduced, kept, filt = [], [], []
    for p in paths:
        with Image.open(p) as im:
            was_reduced = min(im.size) >= 2 * size
        a, b = full(dict(img_path=p))['img'], draft(dict(img_path=p))['img']
        (reduced if was_reduced else kept).append((a, b))
        if was_reduced:
            filt.append((a, bilinear(dict(img_path=p))['img']))
    return dict(draft_vs_full_reduced=_diff_stats(reduced), draft_vs_full_not_reduced=_diff_stats(kept),
                bicubic_vs_bilinear_reduced=_diff_stats(filt))


# ----------------------------------------------------------------------------------------------------------- needed
def recipes(plan_files: list[str], step_times: list[str]) -> list[dict]:
    """``[{name, step_time_s, per_gpu_batch, needed_images_per_s}]`` from planner JSON files and NAME=S:B items."""
    from transvae.utils.errors import UserInputError
    rows = []
    for f in plan_files:
        with open(f) as fh:
            plan = json.load(fh)
        for key in ('step_time_s', 'per_gpu_batch'):
            if key not in plan:
                raise UserInputError(f'{f}: no {key!r} in the planner JSON (tools/analysis_tools/plan_run.py --json)')
        name = osp.splitext(osp.basename(str(plan.get('config', f))))[0]
        rows.append(dict(name=name, step_time_s=float(plan['step_time_s']), per_gpu_batch=int(plan['per_gpu_batch']),
                         source=f))
    for item in step_times:
        try:
            name, rest = item.split('=', 1)
            t, b = rest.split(':', 1)
            rows.append(dict(name=name, step_time_s=float(t), per_gpu_batch=int(b), source='--step-time'))
        except ValueError:
            raise UserInputError(f'--step-time {item!r}: expected NAME=SECONDS:BATCH, e.g. transvae-t=0.21:32') \
                from None
    for r in rows:
        if not r['step_time_s'] > 0 or r['per_gpu_batch'] <= 0:
            raise UserInputError(f'{r["name"]}: step time and per-GPU batch must be positive, got {r}')
        r['needed_images_per_s'] = r['per_gpu_batch'] / r['step_time_s']
    return rows


def table(rows: list[dict], rate: dict) -> str:
    lines = ['| recipe | step time (s) | per-GPU batch | needed img/s per GPU | img/s per worker (full / draft) | '
             'workers per GPU (full / draft) |', '| --- | --- | --- | --- | --- | --- |']
    rf, rd = rate['full']['images_per_s'], rate['draft']['images_per_s']
    for r in rows:
        nf, nd = math.ceil(r['needed_images_per_s'] / rf), math.ceil(r['needed_images_per_s'] / rd)
        r.update(workers_per_gpu_full=nf, workers_per_gpu_draft=nd)
        lines.append(f'| {r["name"]} | {r["step_time_s"]:.3g} | {r["per_gpu_batch"]} | '
                     f'{r["needed_images_per_s"]:.0f} | {rf:.0f} / {rd:.0f} | {nf} / {nd} |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.command = ' '.join([osp.relpath(__file__, REPO)] + (argv if argv is not None else sys.argv[1:]))
    import cv2
    import torch

    from transvae.apis import register_all_modules
    register_all_modules()
    needed = recipes(args.plan, args.step_time)  # bad inputs fail before any work
    threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)  # a loader worker: one thread, as mmengine's DataLoader workers have
    cv2.setNumThreads(1)
    try:
        return _measure(args, needed, torch, cv2)
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


def _measure(args: argparse.Namespace, needed: list[dict], torch, cv2) -> dict:
    from transvae.utils.errors import UserInputError
    full, draft, size = pipelines(args.config)
    own_dir = args.work_dir is None
    work = tempfile.mkdtemp(prefix='transvae_loader_') if own_dir else args.work_dir
    if not own_dir:
        os.makedirs(work, exist_ok=True)
        if glob.glob(osp.join(work, 'img_*.jpg')):
            raise UserInputError(f'--work-dir {work} already holds img_*.jpg files: give an empty or new folder')
    try:
        np.random.seed(args.seed)
        photos = source_photos(args.photo_root)
        made = make_jpegs(photos, work, args.num_images, args.quality, args.short_median, args.short_sigma,
                          args.seed)
        paths = made.pop('paths')
        sizes = made.pop('sizes')
        made['fraction_draft_reducible'] = float(np.mean([min(s) >= 2 * size for s in sizes]))
        rate = throughput(full, draft, paths, args.passes)
        # where the draft applies: images whose short side is >= 2 x the resize size (log-normal from 2.8x)
        large = make_jpegs(photos, work, args.compare_images, args.quality, 2.8 * size, args.short_sigma,
                           args.seed + 1, min_short=2 * size, prefix='large')
        large_paths = large.pop('paths')
        large.pop('sizes')
        rate_large = throughput(full, draft, large_paths, args.passes)
        crops = compare_crops(large_paths + paths, size)
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    results = dict(command=args.command,
                   machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(), threads=1),
                   config=args.config, resize=size, images=dict(n=args.num_images, quality=args.quality, **made),
                   throughput=rate, large_images=dict(large, throughput=rate_large), crops=crops, recipes=needed)
    print(f'[loader] {args.num_images} JPEGs q{args.quality}, mean {made["mean_w"]:.0f}x{made["mean_h"]:.0f}, '
          f'{made["mean_file_kb"]:.0f} KB, {100 * made["fraction_draft_reducible"]:.0f}% with short side >= '
          f'{2 * size} (draft-reducible); JPEG PSNR vs source {made["jpeg_psnr_db_mean"]:.1f} dB mean')
    for name, r in (('ImageNet-size set', rate), (f'large set (short side >= {2 * size})', rate_large)):
        print(f'[loader] one worker, {name}: full decode {r["full"]["images_per_s"]:.1f} img/s, draft '
              f'{r["draft"]["images_per_s"]:.1f} img/s, speed-up {r["speedup_draft_over_full"]:.3f}x '
              f'(median of {args.passes} interleaved passes)')
    for key, what in (('draft_vs_full_reduced', 'draft vs full, reduced images'),
                      ('bicubic_vs_bilinear_reduced', 'bicubic vs bilinear resize (full decode), same images'),
                      ('draft_vs_full_not_reduced', 'draft vs full, images not reduced')):
        c = crops[key]
        if c['n']:
            print(f'[loader] crops, {what}: n={c["n"]}, max |diff| {c["max_abs"]}, mean |diff| {c["mean_abs"]:.3f} '
                  f'levels, PSNR min {c["psnr_db_min"]:.1f} / mean {c["psnr_db_mean"]:.1f} dB, '
                  f'{c["n_bit_identical"]} bit-identical')
    if needed:
        print(table(needed, rate))
    if args.json:
        from transvae.engine.atomic_io import atomic_write_text
        atomic_write_text(args.json, json.dumps(results, indent=1))
        print(f'[loader] wrote {args.json}')
    return results


if __name__ == '__main__':
    from transvae.engine.config_validation import config_errors
    with config_errors(exit_on_error=True):
        main()
