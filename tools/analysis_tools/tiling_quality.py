"""Tiled vs whole-image reconstruction: PSNR(tiled, whole), peak memory and time per tiling mode, and SD-VAE's tiling.

Every run (one reconstruction = encode + decode of one image, whole or tiled in one mode) is a fresh worker process,
so its peak resident memory above the loaded model and input (``VmHWM`` after a reset) is its own. Workers save the
reconstruction; the driver reports, per size and mode:

* PSNR(tiled, whole) in dB (float, on ``[0, 1]`` clamped images) and the max absolute difference, where the whole
  image was also run (``--quality-sizes``);
* PSNR against the photo (uint8-quantised, :func:`transvae.evaluation.functional.psnr`);
* peak memory (MiB) and time (s) of encode and decode.

``--stub-attention-from S``: at sizes >= S every run (whole, exact, blend) replaces ``F.scaled_dot_product_attention``
by a linear-cost *global* proxy, every query getting the mean of ``V`` over all keys (global attention over
``(S/4)²`` tokens takes hours on a CPU). The proxy keeps the part that matters for tiling: an output that depends on
every token, which tile-local attention (the blend mode) gets wrong and the exact mode gets right; it is not the
trained model's function. Memory is then measured for everything but the attention kernel's own workspace (the CPU
flash kernel's is ``O(threads × block²)``), and the time is the measured time plus each attention call's time
extrapolated as ``N²`` from a timed call at ``--attention-probe-tokens`` tokens. The report says so per row.

SD-VAE (diffusers ``AutoencoderKL`` with SD's architecture, random weights, ``enable_tiling()``: 512-px tiles, 25 %
overlap) decodes a latent of each ``--sdvae-sizes`` size; above ``--sdvae-full-up-to`` only the first
``--sdvae-max-tiles`` tiles run, the time is extrapolated by the tile count and the memory adds the decoded tiles
and output diffusers keeps (stated).

Example (one of the README table's runs; its CPU minutes depend mostly on the whole-image attention)::

    python tools/analysis_tools/tiling_quality.py configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py \\
        CHECKPOINT --quality-sizes 1024 --perf-sizes --tiles 512 --stub-attention-from 1024 --sdvae-sizes \\
        --out work_dirs/tiling_quality/q1024.json
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

import torch

IMG_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
# sample_size=512 as in SD's VAE config: enable_tiling() tiles at sample_size (diffusers' default 32 would give 32-px tiles)
SD_VAE_ARCH = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
                   down_block_types=('DownEncoderBlock2D', ) * 4, up_block_types=('UpDecoderBlock2D', ) * 4)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', default=None, help='random weights if absent')
    p.add_argument('--trust-checkpoint', action='store_true', help='allow a checkpoint that needs full unpickling')
    p.add_argument('--preset', default=None, help='config preset used when the checkpoint was trained')
    p.add_argument('--photos', default='data/sample_photos/val', help='folder searched recursively')
    p.add_argument('--num-photos', type=int, default=2, help='photos per quality size (first N in sorted order)')
    p.add_argument('--one-photo-from', type=int, default=2048, help='sizes >= this use only the first photo')
    p.add_argument('--quality-sizes', type=int, nargs='*', default=[512, 1024, 2048])
    p.add_argument('--perf-sizes', type=int, nargs='*', default=[4096], help='tiled runs only (no whole reference)')
    p.add_argument('--tiles', type=int, nargs='+', default=[256, 512], help='tile sizes in pixels')
    p.add_argument('--modes', nargs='+', default=['exact', 'blend'], choices=['exact', 'blend'])
    p.add_argument('--stub-attention-from', type=int, default=4096)
    p.add_argument('--attention-probe-tokens', type=int, default=16384)
    p.add_argument('--sdvae-sizes', type=int, nargs='*', default=[1024, 2048, 4096])
    p.add_argument('--sdvae-full-up-to', type=int, default=1024)
    p.add_argument('--sdvae-max-tiles', type=int, default=2)
    p.add_argument('--out', default=None, help='JSON report (a Markdown table is written beside it)')
    p.add_argument('--_worker', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------------------
# worker: one reconstruction in a fresh process
def load_photo(path: str | None, size: int) -> torch.Tensor:
    """``(1, 3, size, size)`` in [0, 1]: the test pipeline's transforms (short side -> ``size``, centre crop), or a
    smooth synthetic image when ``path`` is ``None``."""
    if path is None:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing='ij')
        return (0.5 + 0.4 * torch.stack([torch.sin(9 * yy), torch.cos(13 * xx), torch.sin(7 * (xx + yy))]))[None]
    from transvae.datasets.transforms import CenterCrop, LoadImageRGB, ResizeShortSide
    results: dict | None = dict(img_path=path)
    for t in (LoadImageRGB(), ResizeShortSide(size, interpolation='bicubic'), CenterCrop(size)):
        results = t(results)
        if results is None:
            raise SystemExit(f'cannot decode {path}')
    return torch.from_numpy(results['img'].copy()).permute(2, 0, 1).float()[None] / 255.0


class AttentionStub:
    """Replace ``F.scaled_dot_product_attention`` by the global mean of ``V`` (a fresh output tensor, as the kernel
    allocates); records each call's ``(B, heads, N, d)``."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __enter__(self) -> AttentionStub:
        import torch.nn.functional as F
        self._orig = F.scaled_dot_product_attention

        def stub(q, k, v, *args, **kwargs):
            self.calls.append([*q.shape[:-2], q.shape[-2], q.shape[-1]])
            return v.mean(dim=-2, keepdim=True).expand(*q.shape[:-1], v.shape[-1]).contiguous()
        F.scaled_dot_product_attention = stub
        return self

    def __exit__(self, *exc) -> None:
        import torch.nn.functional as F
        F.scaled_dot_product_attention = self._orig


def run_worker(spec: dict) -> dict:
    from transvae.utils.allocator import tune_cpu_allocator
    from transvae.utils.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
    tune_cpu_allocator()
    torch.manual_seed(0)
    size = spec['size']
    if spec['kind'] == 'sdvae':
        from diffusers import AutoencoderKL
        vae = AutoencoderKL(**SD_VAE_ARCH).eval()
        vae.enable_tiling()
        z = torch.randn(1, 4, size // 8, size // 8)
        calls = dict(n=0)
        limit = spec.get('max_tiles') or 0

        def count(module, args):
            calls['n'] += 1
            if limit and calls['n'] > limit:
                raise StopIteration
        vae.decoder.register_forward_pre_hook(count)
        base = rss_bytes()
        reset_peak_rss()
        t0 = time.perf_counter()
        with torch.no_grad():
            try:
                vae.decode(z)
            except StopIteration:
                pass
        return dict(decode_s=time.perf_counter() - t0, peak_mb=(peak_rss_bytes() - base) / 2**20,
                    tiles_run=min(calls['n'], limit) if limit else calls['n'])
    from transvae.apis import init_model
    model = init_model(spec['config'], spec.get('checkpoint'), preset=spec.get('preset'),
                       trusted=spec.get('trust', False))
    x = load_photo(spec.get('photo'), size) * 2 - 1
    kw = None if spec['mode'] == 'whole' else dict(tile=spec['tile'], mode=spec['mode'])
    stub = AttentionStub() if spec.get('stub_attention') else None
    base = rss_bytes()
    reset_peak_rss()
    with torch.no_grad(), (stub or torch.no_grad()):
        t0 = time.perf_counter()
        post = model.encode(x) if kw is None else model.tiled_encode(x, **kw)
        z = post.mode()
        t1 = time.perf_counter()
        rec = model.decode(z) if kw is None else model.tiled_decode(z, **kw)
        t2 = time.perf_counter()
    out = dict(encode_s=t1 - t0, decode_s=t2 - t1, peak_mb=(peak_rss_bytes() - base) / 2**20)
    if stub is not None:
        out['attention_calls'] = stub.calls
    if spec.get('save'):
        torch.save(((rec.float() + 1) / 2).clamp_(0, 1), spec['save'])
    return out


def call_worker(spec: dict) -> dict:
    cmd = [sys.executable, osp.abspath(__file__), spec['config'], '--_worker', json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('worker-result: ')]
    if proc.returncode or not lines:
        return dict(error=(proc.stderr or proc.stdout)[-1500:])
    return json.loads(lines[-1][len('worker-result: '):])


# ---------------------------------------------------------------------------------------------------------------------
# driver
def psnr_float(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two ``[0, 1]`` images without quantisation (float64 MSE); ``inf`` when identical."""
    mse = (a.double() - b.double()).square().mean().item()
    return float('inf') if mse == 0 else 10 * math.log10(1.0 / mse)


def attention_seconds(calls: list[list[int]], probe_tokens: int) -> float:
    """Extrapolated time of the stubbed attention calls: one timed call per shape at ``probe_tokens``, x (N/n)²."""
    import torch.nn.functional as F
    total, cache = 0.0, {}
    for *bh, n, d in calls:
        key = (tuple(bh), d)
        if key not in cache:
            q = torch.randn(*bh, probe_tokens, d)
            t0 = time.perf_counter()
            F.scaled_dot_product_attention(q, q, q)
            cache[key] = time.perf_counter() - t0
        total += cache[key] * (n / probe_tokens) ** 2
    return total


def _extrapolate(res: dict, probe_tokens: int) -> None:
    """Add the extrapolated attention time and a note to a worker result that ran with the attention proxy."""
    calls = res.pop('attention_calls', None)
    if calls is not None and 'error' not in res:
        res.update(attention_extrapolated_s=attention_seconds(calls, probe_tokens),
                   note='attention = global-mean proxy: PSNR of the proxy model, memory without the SDPA workspace, '
                        'time = measured + SDPA extrapolated as N²')


def sdvae_tiles(size: int) -> int:
    """Tiles diffusers' ``tiled_decode`` runs for a ``size``² image (64-latent tiles every 48 latent cells)."""
    return len(range(0, size // 8, 48)) ** 2


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args._worker:
        print('worker-result: ' + json.dumps(run_worker(json.loads(args._worker))), flush=True)
        return {}
    photos = sorted(p for p in glob.glob(osp.join(args.photos, '**', '*'), recursive=True)
                    if p.lower().endswith(IMG_EXTS))[:max(args.num_photos, 1)]
    common = dict(config=args.config, checkpoint=args.checkpoint, preset=args.preset, trust=args.trust_checkpoint)
    report: dict = dict(config=args.config, checkpoint=args.checkpoint, command=' '.join(sys.argv),
                        machine=f'{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}', rows=[])
    tmp = tempfile.mkdtemp(prefix='tiling_quality_')
    sizes = [(s, True) for s in args.quality_sizes] + [(s, False) for s in args.perf_sizes]
    for size, quality in sizes:
        use = (photos[:1] if size >= args.one_photo_from else photos) or [None]
        for photo in use:
            name = osp.basename(photo) if photo else 'synthetic'
            whole = None
            if quality:
                path = osp.join(tmp, f'whole_{size}_{name}.pt')
                stub = size >= args.stub_attention_from
                res = call_worker(dict(common, kind='ours', size=size, photo=photo, mode='whole', save=path,
                                       stub_attention=stub))
                whole = torch.load(path) if 'error' not in res else None
                ref = load_photo(photo, size)
                res.update(size=size, photo=name, mode='whole', tile=None)
                _extrapolate(res, args.attention_probe_tokens)
                if whole is not None:
                    from transvae.evaluation.functional import psnr
                    res['psnr_photo'] = float(psnr(whole, ref)[0])
                report['rows'].append(res)
                print(json.dumps(res), flush=True)
            for mode in args.modes:
                for tile in args.tiles:
                    if tile >= size:
                        continue
                    stub = size >= args.stub_attention_from
                    path = osp.join(tmp, f'{mode}_{tile}_{size}_{name}.pt')
                    res = call_worker(dict(common, kind='ours', size=size, photo=photo, mode=mode, tile=tile,
                                           stub_attention=stub, save=path))
                    res.update(size=size, photo=name, mode=mode, tile=tile)
                    _extrapolate(res, args.attention_probe_tokens)
                    if 'error' not in res:
                        rec = torch.load(path)
                        if photo is not None:
                            from transvae.evaluation.functional import psnr
                            res['psnr_photo'] = float(psnr(rec, load_photo(photo, size))[0])
                        if whole is not None:
                            res['psnr_vs_whole'] = psnr_float(rec, whole)
                            res['max_abs_diff'] = (rec - whole).abs().max().item()
                    report['rows'].append(res)
                    print(json.dumps(res), flush=True)
    for size in args.sdvae_sizes:
        limit = 0 if size <= args.sdvae_full_up_to else args.sdvae_max_tiles
        res = call_worker(dict(common, kind='sdvae', size=size, max_tiles=limit))
        res.update(size=size, mode='sdvae-tiled-decode', tiles_total=sdvae_tiles(size))
        if limit and 'error' not in res:
            ran = res['tiles_run']
            kept = (sdvae_tiles(size) - ran) * 3 * 512 * 512 * 4 + 2 * 3 * size * size * 4
            res.update(decode_s=res['decode_s'] * sdvae_tiles(size) / ran, peak_mb=res['peak_mb'] + kept / 2**20,
                       note=f'first {ran} tiles measured; time x tiles, memory + decoded tiles and output kept')
        report['rows'].append(res)
        print(json.dumps(res), flush=True)
    report['markdown'] = markdown(report)
    print(report['markdown'])
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as fh:
            json.dump(report, fh, indent=1)
        with open(osp.splitext(args.out)[0] + '.md', 'w') as fh:
            fh.write(report['markdown'] + '\n')
    return report


def markdown(report: dict) -> str:
    def f(v, fmt):
        return '' if v is None else ('inf' if v == float('inf') else format(v, fmt))
    md = ['| size | mode | tile | photo | PSNR(tiled, whole) dB | max abs diff | PSNR vs photo | peak MiB | '
          'encode s | decode s | total s | note |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in report['rows']:
        total = None
        if r.get('decode_s') is not None:
            total = r.get('encode_s', 0) + r['decode_s'] + r.get('attention_extrapolated_s', 0)
        md.append(f"| {r['size']} | {r['mode']} | {r.get('tile') or ''} | {r.get('photo', '')} | "
                  f"{f(r.get('psnr_vs_whole'), '.2f')} | {f(r.get('max_abs_diff'), '.1e')} | "
                  f"{f(r.get('psnr_photo'), '.2f')} | {f(r.get('peak_mb'), '.0f')} | {f(r.get('encode_s'), '.1f')} | "
                  f"{f(r.get('decode_s'), '.1f')} | {f(total, '.1f')} | {r.get('note', r.get('error', ''))[:120]} |")
    return '\n'.join(md)


if __name__ == '__main__':
    main()
