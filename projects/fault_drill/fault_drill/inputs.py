"""Fault-drill cases for inputs (issue 20, items 9 and 10): the ``transvae.apis`` input contract and images too large
to decode (decompression bombs). Each drill returns rows ``{fault, attempts, survived, lost, check}``.

``write_blank_png`` writes a valid PNG of any declared size without building its pixels (rows of zeros compressed
as a stream), so a 12000 x 12000 image costs 17 KB (1-bit gray) or 420 KB (8-bit RGB) and about 1 s to make; the
tests in ``tests/reliability/test_image_bombs.py`` use it too.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import struct
import subprocess
import sys
import zlib

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))

#: A small VAE (f4, 4 latent channels, CNN stages only) for the API drills: a few thousand parameters.
API_MODEL = dict(type='VAE', arch=dict(widths=[8, 16, 16], depths=[1, 1, 1], latent_channels=4, num_cnn_stages=3,
                                       head_dim=8),
                 encoder=dict(type='TransVAEEncoder'), decoder=dict(type='TransVAEDecoder'),
                 rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


def _row(fault: str, attempts: int, survived: int, check: str) -> dict:
    return dict(fault=fault, attempts=attempts, survived=survived, lost=attempts - survived, check=check)


def write_blank_png(path: str, width: int, height: int, rgb: bool = False) -> int:
    """Write an all-black PNG declaring ``width x height`` (1-bit gray, or 8-bit RGB when ``rgb``); returns its bytes.

    The pixel rows are compressed as a stream of zero blocks, so memory stays at one block (64 rows) whatever the
    declared size.
    """
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data) & 0xffffffff)

    bit_depth, color_type, channels = (8, 2, 3) if rgb else (1, 0, 1)
    row = bytes(1 + (width * channels * bit_depth + 7) // 8)  # filter byte 0, then zero pixels
    comp = zlib.compressobj(9)
    block = row * 64
    parts = [comp.compress(block) for _ in range(height // 64)]
    parts += [comp.compress(row * (height % 64)), comp.flush()]
    ihdr = struct.pack('>IIBBBBB', width, height, bit_depth, color_type, 0, 0, 0)
    data = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', b''.join(parts)) + chunk(b'IEND', b'')
    with open(path, 'wb') as f:
        f.write(data)
    return len(data)


def api_model():
    """The drill's API model (random weights, eval mode, CPU)."""
    from mmengine.config import Config

    from transvae.apis import init_model
    return init_model(Config(dict(model=API_MODEL)))


# ---------------------------------------------------------------------------------------------------------------------
# item 9: one input contract for transvae.apis
def api_contract_cases(d: str, rng) -> list[tuple[str, object]]:
    """``(name, check)`` pairs; ``check(model)`` returns ``True`` when the API behaved (right result or clear error).

    ``d`` is a scratch folder for the image files; ``rng`` a ``random.Random`` for the image contents.
    """
    import numpy as np
    import torch
    from PIL import Image

    from transvae.apis import decode, encode, reconstruct, to_image_tensor
    seed = rng.randint(0, 2**31 - 1)
    g = np.random.default_rng(seed)
    rgba = g.integers(0, 256, (12, 20, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255  # fully transparent and opaque pixels too
    la = rgba[..., [0, 3]].copy()
    Image.fromarray(rgba, 'RGBA').save(osp.join(d, 'rgba.png'))
    Image.fromarray(la, 'LA').save(osp.join(d, 'la.png'))
    u8 = g.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    f01 = torch.from_numpy(u8).float() / 255

    def refused(fn, exc, *words):
        def check(model) -> bool:
            try:
                fn(model)
            except exc as e:
                msg = str(e)
                return all(w in msg for w in words) and len(msg) < 600
            except Exception:  # noqa: BLE001 -- the wrong kind of error is a lost case
                return False
            return False
        return check

    def same_as_file(value, file, exact=True):
        def check(model) -> bool:
            a, b = to_image_tensor(value)[0], to_image_tensor(osp.join(d, file))[0]
            close = torch.equal(a, b) if exact else float((a - b).abs().max()) <= 1 / 255 + 1e-6
            ra, rb = reconstruct(model, value), reconstruct(model, osp.join(d, file))
            return close and (torch.equal(ra, rb) if exact else ra.shape == rb.shape)
        return check

    def nan_model_refused(model) -> bool:
        import copy
        bad = copy.deepcopy(model)
        with torch.no_grad():
            next(bad.decoder.parameters()).fill_(float('nan'))
        return refused(lambda m: reconstruct(m, f01), ValueError, "decoder's outputs", 'NaN')(bad)

    def z(model, c=4, h=4, w=4):
        return torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(seed))

    return [
        ('float 0..255 tensor', refused(lambda m: reconstruct(m, f01 * 255), ValueError, '0..255 data?', 'uint8')),
        ('float 0..255 numpy array', refused(lambda m: encode(m, u8.transpose(1, 2, 0).astype(np.float32)),
                                             ValueError, 'divide by 255')),
        ('float [-1, 1] tensor', refused(lambda m: reconstruct(m, f01 * 2 - 1), ValueError, '[-1, 1] data',
                                         '(x + 1) / 2')),
        ('bicubic overshoot 1.05', refused(lambda m: reconstruct(m, f01 * 1.05), ValueError, 'overshoots',
                                           'clamp(0, 1)')),
        ('float 1 + 5e-4 (rounding)', lambda m: bool(reconstruct(m, (f01 + 5e-4)).isfinite().all())),
        ('int64 0..255 array', refused(lambda m: reconstruct(m, u8.astype(np.int64).transpose(1, 2, 0)), TypeError,
                                       'uint8')),
        ('channels-last tensor', refused(lambda m: reconstruct(m, f01.permute(1, 2, 0)), ValueError,
                                         'permute(2, 0, 1)')),
        ('RGBA uint8 array == RGBA PNG', same_as_file(rgba, 'rgba.png')),
        ('RGBA uint8 tensor == RGBA PNG', same_as_file(torch.from_numpy(rgba).permute(2, 0, 1), 'rgba.png')),
        ('RGBA PIL image == RGBA PNG', same_as_file(Image.fromarray(rgba, 'RGBA'), 'rgba.png')),
        ('gray+alpha uint8 array == LA PNG', same_as_file(la, 'la.png')),
        ('RGBA float array ~ RGBA PNG (1/255)', same_as_file(rgba.astype(np.float32) / 255, 'rgba.png', exact=False)),
        ('NaN latent to decode', refused(lambda m: decode(m, z(m).fill_(float('nan'))), ValueError, 'NaN')),
        ('Inf latent to decode', refused(lambda m: decode(m, z(m) / 0), ValueError, 'Inf')),
        ('latent with 8 channels for a d=4 model', refused(lambda m: decode(m, z(m, c=8)), ValueError, '8 channels',
                                                            '4')),
        ('latent of rank 2', refused(lambda m: decode(m, z(m)[0, 0]), ValueError, '(B, d, h, w)')),
        ('integer latent', refused(lambda m: decode(m, z(m).long()), TypeError, 'floating point')),
        ('posterior given to decode', refused(lambda m: decode(m, encode(m, f01)), TypeError, '.mode()')),
        ('out_size beyond the decoded image', refused(lambda m: decode(m, z(m), out_size=(64, 64)), ValueError,
                                                      'out_size')),
        ('NaN decoder weights, finite input', nan_model_refused),
    ]


def drill_api_contract(ctx: dict) -> list[dict]:
    """Item 9: hostile inputs to ``encode`` / ``decode`` / ``reconstruct``; each must give the contract's result."""
    d = osp.join(ctx['out'], 'api_contract')
    os.makedirs(d, exist_ok=True)
    model = api_model()
    cases = api_contract_cases(d, ctx['rng'])
    ok, lost = 0, []
    for name, check in cases:
        try:
            good = bool(check(model))
        except Exception as e:  # noqa: BLE001
            good, name = False, f'{name} ({type(e).__name__}: {e})'
        ok += int(good)
        if not good:
            lost.append(name)
    check_text = ('a clear ValueError / TypeError naming the fix (divide by 255, (x + 1) / 2, clamp, channels) '
                  'or the result identical to the same image read from a PNG')
    if lost:
        check_text += f'; lost: {", ".join(lost)}'
    return [_row('`transvae.apis` input contract: float 0..255 / [-1, 1] / overshooting images, int64, channels-last, '
                 'RGBA / LA arrays vs files, NaN / Inf / wrong-channel / wrong-rank / integer latents, a posterior '
                 'and an oversized out_size to decode, NaN weights', len(cases), ok, check_text)]


# ---------------------------------------------------------------------------------------------------------------------
# item 10: images too large to decode
_PROBE = r'''
import json, resource, sys, time, warnings
from transvae.apis import register_all_modules
register_all_modules()
import numpy as np
from mmengine.config import Config
from transvae.apis import init_model, reconstruct
model = init_model(Config(dict(model={model!r})))
reconstruct(model, np.zeros((8, 8, 3), np.uint8))  # warm up: every import and the first forward
kw = {kw!r}
out = []
for path in {paths!r}:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            r = reconstruct(model, path, **kw)
            res = dict(ok=True, shape=list(r.shape))
        except Exception as e:
            res = dict(ok=False, error=type(e).__name__, message=str(e))
    res.update(path=path, seconds=time.time() - t0, warnings=[str(w.message) for w in caught],
               peak_growth_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    out.append(res)
print('PROBE ' + json.dumps(out))
'''


def probe_reconstruct(paths: list[str], timeout: float = 300, **kw) -> list[dict]:
    """``transvae.apis.reconstruct(path, **kw)`` per path in a fresh process: result or error, seconds, peak-RSS
    growth (MiB, over a warmed-up model) and the warnings raised."""
    code = _PROBE.format(repo=REPO, model=API_MODEL, paths=list(paths), kw=kw)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith('PROBE ')), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f'probe failed ({proc.returncode}): {proc.stderr[-3000:]}')
    return json.loads(line[len('PROBE '):])


def make_bomb_folder(root: str, n_good: int = 6, rgb_bomb: bool = False) -> dict:
    """A flat image folder: ``n_good`` small PNGs and the bombs (12000² 1-bit PNG: PIL only warns; 20000² 1-bit PNG:
    PIL's own error; optionally the issue's 12000² 8-bit RGB PNG). Returns ``dict(good=[...], bombs=[...])``."""
    import numpy as np
    from PIL import Image
    os.makedirs(root, exist_ok=True)
    good = []
    for i in range(n_good):
        p = osp.join(root, f'good_{i}.png')
        Image.fromarray(np.full((24, 24, 3), 20 * i, np.uint8)).save(p)
        good.append(p)
    bombs = [osp.join(root, 'bomb_12000.png'), osp.join(root, 'bomb_20000.png')]
    write_blank_png(bombs[0], 12000, 12000)
    write_blank_png(bombs[1], 20000, 20000)
    if rgb_bomb:
        bombs.append(osp.join(root, 'bomb_12000_rgb.png'))
        write_blank_png(bombs[-1], 12000, 12000, rgb=True)
    return dict(good=good, bombs=bombs)


_DATASET_PROBE = r'''
import json, resource, sys, time
from transvae.apis import register_all_modules
register_all_modules()
from transvae.datasets import ImageFolderDataset
pipe = [dict(type='LoadImageRGB'), dict(type='PackVAEInputs')]
ds = ImageFolderDataset({root!r}, pipeline=pipe, test_mode=True, layout='flat')
ds[0]  # warm up
ds = ImageFolderDataset({root!r}, pipeline=pipe, test_mode=True, layout='flat')
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.time()
loaded = [ds.get_data_info(i)['img_path'] for i in range(len(ds)) if ds[i] is not None]
print('PROBE ' + json.dumps(dict(loaded=loaded, num_skipped=ds.num_skipped, seconds=time.time() - t0,
                                 peak_growth_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)))
'''


def probe_dataset(root: str, timeout: float = 300) -> dict:
    """Load every file of ``root`` through ``ImageFolderDataset`` (test mode) in a fresh process: the loaded paths,
    ``num_skipped``, seconds and peak-RSS growth (MiB)."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', _DATASET_PROBE.format(repo=REPO, root=root)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith('PROBE ')), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f'dataset probe failed ({proc.returncode}): {proc.stderr[-3000:]}')
    return json.loads(line[len('PROBE '):])


def drill_image_bombs(ctx: dict, max_growth_mb: float = 64.0, max_seconds: float = 5.0) -> list[dict]:
    """Item 10: PNGs declaring 12000² / 20000² pixels (17 KB - 420 KB on disk) in a dataset and given to the API."""
    root = osp.join(ctx['out'], 'bombs')
    files = make_bomb_folder(root, rgb_bomb=not ctx['quick'])
    rows = []
    ok_ds = 0
    for _ in range(ctx['attempts']):
        res = probe_dataset(root)
        ok_ds += int(sorted(res['loaded']) == sorted(files['good']) and res['num_skipped'] == len(files['bombs'])
                     and res['peak_growth_mb'] < max_growth_mb and res['seconds'] < max_seconds)
    sizes = ', '.join(f'{osp.basename(b)} ({osp.getsize(b) // 1024} KB)' for b in files['bombs'])
    rows.append(_row(f'images too large to decode in a dataset folder: {sizes} among {len(files["good"])} good '
                     'PNGs (`ImageFolderDataset` + `LoadImageRGB`)', ctx['attempts'], ok_ds,
                     f'the good images load, each bomb skipped and counted before decoding (num_skipped='
                     f'{res["num_skipped"]}), peak RSS +{res["peak_growth_mb"]:.0f} MB, {res["seconds"]:.2f} s for '
                     'the folder'))
    api = probe_reconstruct(files['bombs'])
    ok_api = sum(int(not r['ok'] and r['error'] == 'ImageTooLargeError' and 'max_pixels' in r['message']
                     and f'{89_478_485:,}' in r['message'] and r['peak_growth_mb'] < max_growth_mb
                     and r['seconds'] < max_seconds) for r in api)
    worst = max(api, key=lambda r: r['peak_growth_mb'])
    check = (f'ValueError (ImageTooLargeError) naming the limit and `max_pixels=` to raise it, before decoding: '
             f'at most +{worst["peak_growth_mb"]:.0f} MB peak RSS, {max(r["seconds"] for r in api):.2f} s')
    if not ctx['quick']:  # the same 12000² 1-bit file with the limit off: what the guard saves
        unguarded = _unguarded_decode(files['bombs'][0])
        check += (f' (the 12000² 1-bit file decoded with the limit off: +{unguarded["peak_growth_mb"]:.0f} MB, '
                  f'{unguarded["seconds"]:.1f} s)')
    rows.append(_row('the same files given to `transvae.apis.reconstruct(model, path)`', len(api), ok_api, check))
    return rows


_DECODE_PROBE = r'''
import json, resource, sys, time
from transvae.datasets.transforms.loading import decode_image_rgb
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.time()
a = decode_image_rgb({path!r}, max_pixels=None)
print('PROBE ' + json.dumps(dict(shape=list(a.shape), seconds=time.time() - t0,
                                 peak_growth_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)))
'''


def _unguarded_decode(path: str) -> dict:
    """``decode_image_rgb(path, max_pixels=None)`` in a fresh process: seconds and peak-RSS growth (MiB)."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', _DECODE_PROBE.format(repo=REPO, path=path)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=REPO)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith('PROBE ')), None)
    if proc.returncode != 0 or line is None:
        return dict(seconds=float('nan'), peak_growth_mb=float('nan'))
    return json.loads(line[len('PROBE '):])

