"""LoadImageRGBDraft: JPEG decoding at a reduced DCT scale (PIL ``Image.draft``) before the pipeline's resize.

The reference values (OpenCV's own scaled JPEG decode) are in ``test_transform_references.py``; here: when the draft
applies and when it must not, the geometry it hands on, its errors, the resolution key and the loader tool.
"""
from __future__ import annotations

import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from transvae.datasets.transforms import LoadImageRGB, LoadImageRGBDraft, decode_image_rgb
from transvae.datasets.transforms.resolution import set_pipeline_resolution
from transvae.registry import TRANSFORMS

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def photo_like(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth colour field with mild noise (JPEG-friendly, like a photo)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 255, (9, 12, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC)).astype(np.int16)
    return np.clip(img + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)


def jpeg(tmp_path, w: int, h: int, name: str = 'a.jpg', seed: int = 0, **save) -> str:
    path = str(tmp_path / name)
    Image.fromarray(photo_like(w, h, seed)).save(path, quality=90, **save)
    return path


def load(t, path: str) -> dict:
    return t(dict(img_path=path))


@pytest.mark.parametrize('w, h, min_size, want', [(200, 150, 64, (75, 100)), (203, 150, 32, (38, 51)),
                                                  (203, 151, 16, (19, 26)), (150, 200, 64, (100, 75))])
def test_largest_reduction_that_keeps_the_short_side(tmp_path, w, h, min_size, want):
    """1/2, 1/4 or 1/8 (ceil), the largest keeping both sides >= min_size; portrait and odd sizes too."""
    out = load(LoadImageRGBDraft(min_size=min_size), jpeg(tmp_path, w, h))
    assert out['img'].shape == want + (3, ) and out['img_shape'] == out['ori_shape'] == want
    assert min(out['img'].shape[:2]) >= min_size


@pytest.mark.parametrize('w, h', [(120, 100), (127, 200)])
def test_jpeg_below_twice_min_size_is_bit_identical(tmp_path, w, h):
    """No reduction possible: exactly LoadImageRGB's decode (draft must not change the decoder otherwise)."""
    path = jpeg(tmp_path, w, h)
    np.testing.assert_array_equal(load(LoadImageRGBDraft(min_size=64), path)['img'], load(LoadImageRGB(), path)['img'])


@pytest.mark.parametrize('fmt', ['png', 'webp'])
def test_other_formats_decode_at_full_size(tmp_path, fmt):
    path = str(tmp_path / f'a.{fmt}')
    Image.fromarray(photo_like(256, 200)).save(path, **({'lossless': True} if fmt == 'webp' else {}))
    np.testing.assert_array_equal(load(LoadImageRGBDraft(min_size=32), path)['img'], load(LoadImageRGB(), path)['img'])


def test_default_decode_is_unchanged(tmp_path):
    path = jpeg(tmp_path, 300, 200)
    np.testing.assert_array_equal(decode_image_rgb(path), decode_image_rgb(path, draft_min_size=None))
    assert load(LoadImageRGB(), path)['img'].shape == (200, 300, 3)


def test_exif_orientation_is_applied_after_the_draft(tmp_path):
    """Orientation 6 (rotate 90 CW): the stored 300x200 becomes 200x300 at full size and 100x150 drafted."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path = jpeg(tmp_path, 300, 200, exif=exif.tobytes())
    assert load(LoadImageRGB(), path)['img'].shape == (300, 200, 3)
    assert load(LoadImageRGBDraft(min_size=64), path)['img'].shape == (150, 100, 3)


def test_grayscale_and_cmyk_jpegs_come_out_rgb(tmp_path):
    gray = str(tmp_path / 'g.jpg')
    Image.fromarray(photo_like(256, 256)[..., 0]).save(gray, quality=90)
    out = load(LoadImageRGBDraft(min_size=64), gray)['img']
    assert out.shape == (64, 64, 3) and np.array_equal(out[..., 0], out[..., 2])  # 1/4: 64 >= 64
    cmyk = str(tmp_path / 'c.jpg')
    Image.fromarray(photo_like(256, 256)).convert('CMYK').save(cmyk, quality=90)
    assert load(LoadImageRGBDraft(min_size=64), cmyk)['img'].shape == (64, 64, 3)


def test_crops_after_resize_stay_close_to_the_full_decode(tmp_path):
    """ResizeShortSide(min_size) + CenterCrop on a photo-like 4x image: the drafted crop is within a few levels."""
    path = jpeg(tmp_path, 512, 384)
    pipes = [[dict(type=t, **kw), dict(type='ResizeShortSide', size=96), dict(type='CenterCrop', size=96)]
             for t, kw in (('LoadImageRGB', {}), ('LoadImageRGBDraft', dict(min_size=96)))]
    a, b = [p(dict(img_path=path))['img'] for p in [_compose(p) for p in pipes]]
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert a.shape == b.shape == (96, 96, 3)
    assert 0 < diff.mean() < 1.5 and diff.max() <= 16, (diff.mean(), diff.max())


def _compose(cfgs):
    from mmengine.dataset import Compose
    return Compose([TRANSFORMS.build(c) for c in cfgs])


def test_bad_files_are_skipped_not_raised(tmp_path):
    (tmp_path / 'e.jpg').write_bytes(b'')
    good = jpeg(tmp_path, 200, 200)
    (tmp_path / 't.jpg').write_bytes(open(good, 'rb').read()[:400])
    t = LoadImageRGBDraft(min_size=32)
    for name in ('e.jpg', 't.jpg', 'missing.jpg'):
        results = dict(img_path=str(tmp_path / name))
        assert t(results) is None and results['decode_error']


def test_pixel_limit_still_checked_on_the_declared_size(tmp_path):
    """The decompression-bomb guard reads the header size, before the draft would shrink the decode."""
    path = jpeg(tmp_path, 400, 300)
    results = dict(img_path=path)
    assert LoadImageRGBDraft(min_size=32, max_pixels=400 * 300 - 1)(results) is None
    assert 'image too large' in results['decode_error'] and 'LoadImageRGBDraft(max_pixels=' in results['decode_error']


@pytest.mark.parametrize('bad', [0, -8, 2.5, True, None, '256'])
def test_bad_min_size_refused_at_build(bad):
    with pytest.raises(ValueError, match='min_size must be a positive int'):
        TRANSFORMS.build(dict(type='LoadImageRGBDraft', min_size=bad))


def test_min_size_follows_the_resolution():
    """``--resolution`` sets the draft's min_size with the resize and the crop; the plain loader is untouched."""
    pipe = [dict(type='LoadImageRGBDraft', min_size=256), dict(type='ResizeShortSide', size=256),
            dict(type='RandomCrop', size=256)]
    assert set_pipeline_resolution(pipe, 512) == 3
    assert pipe[0]['min_size'] == pipe[1]['size'] == pipe[2]['size'] == 512
    plain = [dict(type='LoadImageRGB'), dict(type='ResizeShortSide', size=256)]
    assert set_pipeline_resolution(plain, 512) == 1 and plain[0] == dict(type='LoadImageRGB')


def test_repr_and_cache(tmp_path):
    t = LoadImageRGBDraft(min_size=64, cache_mb=1)
    assert repr(t) == 'LoadImageRGBDraft(min_size=64, cache_mb=1, max_pixels=89478485)'
    path = jpeg(tmp_path, 256, 256)
    first = load(t, path)['img']
    assert load(t, path)['img'] is first and first.shape == (64, 64, 3)


def _loader_tool():
    spec = importlib.util.spec_from_file_location('loader_throughput',
                                                  osp.join(REPO, 'tools', 'analysis_tools', 'loader_throughput.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loader_throughput_tool_runs_and_reports(tmp_path, capsys):
    """The tool end to end at a tiny size: both rates, the crop comparison, the workers-per-GPU table."""
    out = tmp_path / 'loader.json'
    res = _loader_tool().main(['--num-images', '6', '--passes', '1', '--compare-images', '4',
                               '--step-time', 'demo=0.5:32', '--work-dir', str(tmp_path / 'jpegs'), '--json', str(out)])
    assert json.loads(out.read_text())['recipes'] == res['recipes']
    assert res['throughput']['full']['images_per_s'] > 0 and res['throughput']['draft']['images_per_s'] > 0
    assert res['crops']['draft_vs_full_reduced']['n'] == 4  # the large set: every image is reduced
    kept = res['crops']['draft_vs_full_not_reduced']
    assert kept['n'] == 6 - round(6 * res['images']['fraction_draft_reducible'])
    assert kept['n_bit_identical'] == kept['n']
    row = res['recipes'][0]
    assert row['needed_images_per_s'] == 64 and row['workers_per_gpu_full'] >= 1
    assert '| demo | 0.5 | 32 | 64 |' in capsys.readouterr().out
    assert len(list((tmp_path / 'jpegs').glob('*.jpg'))) == 10


@pytest.mark.parametrize('argv, match', [(['--step-time', 'demo=fast'], 'expected NAME=SECONDS:BATCH'),
                                         (['--step-time', 'demo=0:32'], 'must be positive')])
def test_loader_throughput_tool_refuses_bad_step_time(argv, match):
    from transvae.utils.errors import UserInputError
    with pytest.raises(UserInputError, match=match):
        _loader_tool().main(argv)
