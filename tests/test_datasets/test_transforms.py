from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from dataset_helpers import make_corrupt_folder, write_rgb
from transvae.datasets.transforms import (CenterCrop, LoadImageRGB, PackVAEInputs, RandomCrop, RandomFlip,
                                          RandomResizedCrop, ResizeShortSide)
from transvae.registry import TRANSFORMS


def load(path):
    return LoadImageRGB()(dict(img_path=str(path)))


def test_load_rgb(tmp_path):
    arr = write_rgb(tmp_path / 'x.png', 24, 32)
    out = load(tmp_path / 'x.png')
    assert out['img'].dtype == np.uint8 and out['img'].shape == (24, 32, 3)
    assert out['img_shape'] == (24, 32) and out['ori_shape'] == (24, 32)
    np.testing.assert_array_equal(out['img'], arr)


def test_load_gray_and_gray_alpha(tmp_path):
    g = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    Image.fromarray(g).save(tmp_path / 'g.png')
    out = load(tmp_path / 'g.png')['img']
    assert out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out[..., 0], g)
    np.testing.assert_array_equal(out[..., 2], g)
    la = Image.merge('LA', [Image.fromarray(g), Image.fromarray(np.zeros_like(g))])  # fully transparent
    la.save(tmp_path / 'la.png')
    assert (load(tmp_path / 'la.png')['img'] == 255).all()


def test_load_rgba_composited_on_white(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., 0] = 200
    a[:4, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    Image.fromarray(a).save(tmp_path / 'a.png')
    img = load(tmp_path / 'a.png')['img']
    np.testing.assert_array_equal(img[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(img[7, 7], [255, 255, 255])


def test_load_palette_with_transparency(tmp_path):
    p = Image.new('P', (6, 4))
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    px = np.zeros((4, 6), np.uint8)
    px[:, 3:] = 1
    p = Image.fromarray(px).convert('P')
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    p.info['transparency'] = 0
    p.save(tmp_path / 'p.png', transparency=0)
    img = load(tmp_path / 'p.png')['img']
    assert img.shape == (4, 6, 3)
    np.testing.assert_array_equal(img[0, 0], [255, 255, 255])  # transparent index -> white
    np.testing.assert_array_equal(img[0, 5], [200, 100, 50])
    p.save(tmp_path / 'p2.gif')
    assert load(tmp_path / 'p2.gif')['img'].shape == (4, 6, 3)


@pytest.mark.parametrize('mode', ['I;16', 'I'])
def test_load_16bit(tmp_path, mode):
    v = np.array([[0, 257 * 100, 65535]], np.uint16).repeat(3, axis=0)
    im = Image.fromarray(v) if mode == 'I;16' else Image.fromarray(v.astype(np.int32))
    assert im.mode == mode
    name = 'h.png' if mode == 'I;16' else 'h.tif'  # PNG cannot store mode I
    im.save(tmp_path / name)
    img = load(tmp_path / name)['img']
    assert img.dtype == np.uint8 and img.shape == (3, 3, 3)
    np.testing.assert_array_equal(img[0, :, 0], [0, 100, 255])


def test_load_cmyk(tmp_path):
    Image.new('CMYK', (10, 6), (0, 0, 0, 0)).save(tmp_path / 'c.jpg')
    img = load(tmp_path / 'c.jpg')['img']
    assert img.shape == (6, 10, 3) and img.min() > 240


def test_load_exif_orientation(tmp_path):
    arr = write_rgb(tmp_path / 'src.png', 20, 40)  # h=20, w=40
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    Image.fromarray(arr).save(tmp_path / 'r.jpg', exif=exif.tobytes(), quality=95)
    out = load(tmp_path / 'r.jpg')
    assert out['img'].shape == (40, 20, 3)
    assert out['ori_shape'] == (40, 20)


def test_load_failures_return_none(tmp_path):
    files = make_corrupt_folder(tmp_path)
    for path in sorted(files['bad']) + [str(tmp_path / 'missing.png')]:
        results = dict(img_path=path)
        assert LoadImageRGB()(results) is None, path
        assert results['decode_error']


def test_truncated_fails_even_if_pil_allows_truncation(tmp_path):
    files = make_corrupt_folder(tmp_path)
    trunc = [p for p in files['bad'] if 'truncated' in p][0]
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        assert load(trunc) is None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    assert ImageFile.LOAD_TRUNCATED_IMAGES == saved


def _img(h, w, seed=0):
    return dict(img=np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8), img_path='x')


@pytest.mark.parametrize('interp', ['bicubic', 'area', 'bilinear', 'lanczos'])
def test_resize_short_side(interp):
    out = ResizeShortSide(16, interpolation=interp)(_img(40, 60))
    assert out['img'].shape == (16, 24, 3) and out['img_shape'] == (16, 24)
    assert out['img'].dtype == np.uint8 and out['img'].flags.c_contiguous
    assert ResizeShortSide(16)(_img(60, 40))['img'].shape == (24, 16, 3)


def test_center_crop_and_pad():
    src = _img(40, 60)
    out = CenterCrop(32)(dict(src))
    np.testing.assert_array_equal(out['img'], src['img'][4:36, 14:46])
    assert CenterCrop((20, 10))(_img(40, 60))['img'].shape == (20, 10, 3)
    assert CenterCrop(64)(_img(40, 60))['img'].shape == (64, 64, 3)


def test_random_crop_pads_small_and_is_seeded():
    out = RandomCrop(32)(_img(10, 50))
    assert out['img'].shape == (32, 32, 3)
    assert RandomCrop(8)(_img(1, 1))['img'].shape == (8, 8, 3)
    np.random.seed(3)
    a = RandomCrop(16)(_img(64, 64))['img']
    np.random.seed(3)
    b = RandomCrop(16)(_img(64, 64))['img']
    np.testing.assert_array_equal(a, b)


def test_random_resized_crop():
    np.random.seed(0)
    for h, w in [(40, 60), (10, 200), (300, 5)]:
        out = RandomResizedCrop(24)(_img(h, w))
        assert out['img'].shape == (24, 24, 3) and out['img_shape'] == (24, 24)
    np.random.seed(1)
    a = RandomResizedCrop(16)(_img(64, 64))['img']
    np.random.seed(1)
    b = RandomResizedCrop(16)(_img(64, 64))['img']
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        RandomResizedCrop(16, scale=(0.5, 0.1))


def test_random_flip():
    src = _img(8, 8)
    out = RandomFlip(prob=1.0)(dict(src, img=src['img'].copy()))
    np.testing.assert_array_equal(out['img'], src['img'][:, ::-1])
    assert out['img'].flags.c_contiguous
    np.random.seed(0)
    flips = [RandomFlip()(dict(src, img=src['img'].copy()))['flip'] for _ in range(200)]
    assert 60 < sum(flips) < 140


def test_pack():
    out = PackVAEInputs()(dict(_img(12, 20), ori_shape=(30, 40), img_shape=(12, 20), gt_label=3))
    x = out['inputs']
    assert x.dtype == torch.uint8 and x.shape == (3, 12, 20) and x.is_contiguous()
    assert out['data_samples'] == dict(img_path='x', ori_shape=(30, 40), img_shape=(12, 20), label=3, skipped=[])
    assert PackVAEInputs()(_img(4, 4))['data_samples']['label'] == -1


def test_registry_build(tmp_path):
    write_rgb(tmp_path / 'x.png', 30, 50)
    from mmengine.dataset import Compose
    pipe = Compose([
        dict(type='LoadImageRGB'),
        dict(type='ResizeShortSide', size=20),
        dict(type='CenterCrop', size=20),
        dict(type='RandomFlip'),
        dict(type='RandomCrop', size=16),
        dict(type='RandomResizedCrop', size=8),
        dict(type='PackVAEInputs')
    ])
    out = pipe(dict(img_path=str(tmp_path / 'x.png')))
    assert out['inputs'].shape == (3, 8, 8)
    assert out['data_samples']['ori_shape'] == (30, 50)
    for name in ('LoadImageRGB', 'ResizeShortSide', 'CenterCrop', 'RandomCrop', 'RandomResizedCrop', 'RandomFlip',
                 'PackVAEInputs'):
        assert TRANSFORMS.get(name).__module__.startswith('transvae.datasets')


def test_load_cache_returns_read_only_arrays_and_respects_budget(tmp_path):
    from transvae.datasets.transforms import LoadImageRGB
    a, b = tmp_path / 'a.png', tmp_path / 'b.png'
    write_rgb(a, 24, 32, seed=1)
    write_rgb(b, 24, 32, seed=2)
    t = LoadImageRGB(cache_mb=24 * 32 * 3 * 1.5 / 2**20)  # room for one image only
    first = t(dict(img_path=str(a)))['img']
    again = t(dict(img_path=str(a)))['img']
    assert again is first and not first.flags.writeable
    other = t(dict(img_path=str(b)))['img']
    assert other.shape == (24, 32, 3) and str(b) not in t._cache
    assert t(dict(img_path=str(tmp_path / 'missing.png'))) is None
