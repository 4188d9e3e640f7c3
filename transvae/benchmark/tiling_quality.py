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

Its command line is ``tools/analysis_tools/tiling_quality.py`` (the flags mirror :class:`TilingQualityOptions`);
:func:`run_tiling_quality` measures, :func:`markdown` tabulates, :func:`save_report` writes the JSON and the table.
A worker is ``python -m transvae.benchmark.tiling_worker SPEC_JSON`` (:func:`run_worker`).
"""
from __future__ import annotations

import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from .targets import SD_VAE_ARCH

__all__ = ['TilingQualityOptions', 'run_tiling_quality', 'markdown', 'save_report', 'run_worker', 'call_worker',
           'load_photo', 'AttentionStub', 'psnr_float', 'attention_seconds', 'sdvae_tiles']

IMG_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
# sample_size=512 as in SD's VAE config: enable_tiling() tiles at sample_size (diffusers' default 32 gives 32-px tiles)
SD_VAE_TILED_ARCH = dict(SD_VAE_ARCH, sample_size=512)
WORKER_RESULT = 'worker-result: '


@dataclass
class TilingQualityOptions:
    """Settings of :func:`run_tiling_quality` (the fields mirror ``tools/analysis_tools/tiling_quality.py``'s flags).

    Attributes:
        config / checkpoint / trust_checkpoint / preset: the model (random weights when ``checkpoint`` is ``None``).
        photos / num_photos / one_photo_from: the first ``num_photos`` images under ``photos`` (sorted), only the
            first at sizes >= ``one_photo_from``; a synthetic image when there are none.
        quality_sizes: sizes run whole and tiled (PSNR(tiled, whole)); perf_sizes: sizes run tiled only.
        tiles / modes: tile sizes in pixels and tiling modes (``'exact'``, ``'blend'``).
        stub_attention_from / attention_probe_tokens: the linear-cost attention proxy at sizes >= this, and the
            token count of the timed attention call its time is extrapolated from.
        sdvae_sizes / sdvae_full_up_to / sdvae_max_tiles: SD-VAE tiled decodes; above ``sdvae_full_up_to`` only the
            first ``sdvae_max_tiles`` tiles run.
    """
    config: str
    checkpoint: Optional[str] = None
    trust_checkpoint: bool = False
    preset: Optional[str] = None
    photos: str = 'data/sample_photos/val'
    num_photos: int = 2
    one_photo_from: int = 2048
    quality_sizes: list[int] = field(default_factory=lambda: [512, 1024, 2048])
    perf_sizes: list[int] = field(default_factory=lambda: [4096])
    tiles: list[int] = field(default_factory=lambda: [256, 512])
    modes: list[str] = field(default_factory=lambda: ['exact', 'blend'])
    stub_attention_from: int = 4096
    attention_probe_tokens: int = 16384
    sdvae_sizes: list[int] = field(default_factory=lambda: [1024, 2048, 4096])
    sdvae_full_up_to: int = 1024
    sdvae_max_tiles: int = 2


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
    """One reconstruction (ours: whole or tiled in ``spec['mode']``; SD-VAE: a tiled decode) and its time / peak
    memory; ``spec['save']``: where the ``[0, 1]`` reconstruction ``(1, 3, size, size)`` is saved."""
    from transvae.utils.allocator import tune_cpu_allocator
    from transvae.utils.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
    tune_cpu_allocator()
    torch.manual_seed(0)
    size = spec['size']
    if spec['kind'] == 'sdvae':
        from diffusers import AutoencoderKL
        vae = AutoencoderKL(**SD_VAE_TILED_ARCH).eval()
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
    """:func:`run_worker` on ``spec`` in a fresh interpreter; its result, or ``{'error': ...}``."""
    cmd = [sys.executable, '-m', 'transvae.benchmark.tiling_worker', json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(WORKER_RESULT)]
    if proc.returncode or not lines:
        return dict(error=(proc.stderr or proc.stdout)[-1500:])
    return json.loads(lines[-1][len(WORKER_RESULT):])


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


def run_tiling_quality(opts: TilingQualityOptions, command: str = '') -> dict:
    """Every run of ``opts`` (each in a fresh worker process), one JSON line printed per row.

    Returns:
        ``dict(config, checkpoint, command, machine, rows, markdown)``: one row per size, photo, mode and tile
        (ours) and per SD-VAE size.
    """
    photos = sorted(p for p in glob.glob(osp.join(opts.photos, '**', '*'), recursive=True)
                    if p.lower().endswith(IMG_EXTS))[:max(opts.num_photos, 1)]
    common = dict(config=opts.config, checkpoint=opts.checkpoint, preset=opts.preset, trust=opts.trust_checkpoint)
    report: dict = dict(config=opts.config, checkpoint=opts.checkpoint, command=command,
                        machine=f'{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}', rows=[])
    tmp = tempfile.mkdtemp(prefix='tiling_quality_')
    sizes = [(s, True) for s in opts.quality_sizes] + [(s, False) for s in opts.perf_sizes]
    for size, quality in sizes:
        use = (photos[:1] if size >= opts.one_photo_from else photos) or [None]
        for photo in use:
            name = osp.basename(photo) if photo else 'synthetic'
            whole = None
            if quality:
                path = osp.join(tmp, f'whole_{size}_{name}.pt')
                stub = size >= opts.stub_attention_from
                res = call_worker(dict(common, kind='ours', size=size, photo=photo, mode='whole', save=path,
                                       stub_attention=stub))
                whole = torch.load(path) if 'error' not in res else None
                ref = load_photo(photo, size)
                res.update(size=size, photo=name, mode='whole', tile=None)
                _extrapolate(res, opts.attention_probe_tokens)
                if whole is not None:
                    from transvae.evaluation.functional import psnr
                    res['psnr_photo'] = float(psnr(whole, ref)[0])
                report['rows'].append(res)
                print(json.dumps(res), flush=True)
            for mode in opts.modes:
                for tile in opts.tiles:
                    if tile >= size:
                        continue
                    stub = size >= opts.stub_attention_from
                    path = osp.join(tmp, f'{mode}_{tile}_{size}_{name}.pt')
                    res = call_worker(dict(common, kind='ours', size=size, photo=photo, mode=mode, tile=tile,
                                           stub_attention=stub, save=path))
                    res.update(size=size, photo=name, mode=mode, tile=tile)
                    _extrapolate(res, opts.attention_probe_tokens)
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
    for size in opts.sdvae_sizes:
        limit = 0 if size <= opts.sdvae_full_up_to else opts.sdvae_max_tiles
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
    return report


def markdown(report: dict) -> str:
    """The report's rows as a Markdown table."""
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


def save_report(report: dict, out: str) -> None:
    """Write ``report`` as JSON to ``out`` and its Markdown table beside it (``.md``)."""
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as fh:
        json.dump(report, fh, indent=1)
    with open(osp.splitext(out)[0] + '.md', 'w') as fh:
        fh.write(report['markdown'] + '\n')
