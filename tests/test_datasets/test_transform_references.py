"""Every registered transform of ``transvae/datasets/transforms`` by value (issue 23): against PIL, OpenCV,
torchvision or a hand computation written index by index, with non-default settings on NON-SQUARE images (37 x 53,
53 x 37) and crops that are padded on one side only. ``TRANSFORM_REFERENCES`` maps each registered name to the
tests that pin it; a transform registered from ``transvae`` without an entry fails
:func:`test_every_registered_transform_has_a_reference` (one registered from a user package is skipped).

Conventions pinned here (where torchvision differs, the difference is stated): the resized long side is
``round(long * size / short)`` (torchvision truncates); a centre crop starts at ``(H - h) // 2`` (torchvision rounds
half to even); padding is symmetric with the odd pixel after (``np.pad`` style), reflect by default.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop as TVRandomResizedCrop

import slot_registry  # noqa: F401  (registers every transvae module and the example user package)
from transvae.registry import TRANSFORMS

pytestmark = pytest.mark.usefixtures('one_thread')

H, W = 37, 53  # non-square, odd, coprime


def image(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """A random uint8 ``(h, w, 3)`` image: every pixel distinct enough that a one-pixel shift shows."""
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8)


def build(cfg: dict):
    return TRANSFORMS.build(cfg)


def hand_pad(img: np.ndarray, top: int, bottom: int, left: int, right: int, mode: str) -> np.ndarray:
    """Pad written index by index: ``reflect`` maps ``-i -> i`` and ``n - 1 + i -> n - 1 - i`` (edge not repeated),
    ``edge`` clamps, ``constant`` fills 0."""
    h, w = img.shape[:2]

    def index(n: int, before: int, after: int) -> np.ndarray:
        i = np.arange(-before, n + after)
        if mode == 'reflect':
            i = np.where(i < 0, -i, i)
            i = np.where(i > n - 1, 2 * (n - 1) - i, i)
        elif mode == 'edge':
            i = np.clip(i, 0, n - 1)
        return i

    rows, cols = index(h, top, bottom), index(w, left, right)
    out = img[np.clip(rows, 0, h - 1)][:, np.clip(cols, 0, w - 1)].copy()
    if mode == 'constant':
        out[(rows < 0) | (rows > h - 1)] = 0
        out[:, (cols < 0) | (cols > w - 1)] = 0
    return out


# ----------------------------------------------------------------------------------------------- ResizeShortSide
_PIL_FILTERS = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC,
                'lanczos': Image.LANCZOS}


@pytest.mark.parametrize('interp', ['bicubic', 'bilinear', 'lanczos', 'nearest', 'area'])
@pytest.mark.parametrize('hw,size,want', [((H, W), 20, (20, 29)),  # 53 * 20 / 37 = 28.65 -> 29 (torchvision: 28)
                                          ((W, H), 20, (29, 20)),  # portrait: the width is the short side
                                          ((H, W), 50, (50, 72)),  # upscaling: 71.6 -> 72
                                          ((H, W), 11, (11, 16))])  # 15.76 -> 16
def test_resize_short_side_size_and_pixels(interp, hw, size, want):
    """Output size ``round(long * size / short)``; pixels equal PIL's resize with the named filter (OpenCV's
    ``INTER_AREA`` when shrinking, ``INTER_CUBIC`` when enlarging, for ``area``); ``scale_factor = (sw, sh)``."""
    src = image(*hw, seed=1)
    out = build(dict(type='ResizeShortSide', size=size, interpolation=interp))(dict(img=src.copy()))
    nh, nw = want
    assert out['img'].shape == (nh, nw, 3) and out['img_shape'] == (nh, nw)
    assert out['img'].dtype == np.uint8 and out['img'].flags.c_contiguous
    assert out['scale_factor'] == (nw / hw[1], nh / hw[0])
    if interp == 'area':
        flag = cv2.INTER_CUBIC if nh > hw[0] else cv2.INTER_AREA
        ref = cv2.resize(src, (nw, nh), interpolation=flag)
    else:
        ref = np.asarray(Image.fromarray(src).resize((nw, nh), resample=_PIL_FILTERS[interp]))
    np.testing.assert_array_equal(out['img'], ref)


def test_resize_short_side_is_antialiased():
    """One-pixel black / white columns shrunk 4x: an antialiased filter averages them to mid-grey everywhere
    (sampling without a low-pass keeps near-black / near-white columns; the box filter of ``area`` gives 127.5
    exactly); bilinear agrees with torchvision's antialiased tensor resize within one grey level."""
    src = np.zeros((80, 120, 3), np.uint8)
    src[:, ::2] = 255
    for interp in ('bilinear', 'bicubic', 'lanczos', 'area'):
        out = build(dict(type='ResizeShortSide', size=20, interpolation=interp))(dict(img=src.copy()))['img']
        assert out.shape == (20, 30, 3)
        assert np.abs(out[2:-2, 2:-2].astype(float) - 127.5).max() < 25, interp
        if interp == 'area':
            assert set(np.unique(out)) <= {127, 128}
    out = build(dict(type='ResizeShortSide', size=20, interpolation='bilinear'))(dict(img=image(seed=2)))['img']
    tv = TF.resize(torch.from_numpy(image(seed=2)).permute(2, 0, 1), [20, 29], InterpolationMode.BILINEAR,
                   antialias=True).permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - tv.astype(int)).max() <= 1


def test_resize_short_side_keeps_an_image_already_at_size():
    src = image(20, 33, seed=3)
    out = build(dict(type='ResizeShortSide', size=20, interpolation='lanczos'))(dict(img=src.copy()))
    np.testing.assert_array_equal(out['img'], src)
    assert out['scale_factor'] == (1.0, 1.0)


# ----------------------------------------------------------------------------------------------- CenterCrop
@pytest.mark.parametrize('size,y0,x0', [((21, 30), 8, 11),  # (37 - 21) / 2 = 8, (53 - 30) // 2 = 11 (torchvision 12)
                                        ((20, 31), 8, 11),  # (37 - 20) // 2 = 8 (8.5), (53 - 31) / 2 = 11
                                        ((37, 1), 0, 26),
                                        (9, 14, 22)])
def test_center_crop_odd_sizes(size, y0, x0):
    src = image(seed=4)
    out = build(dict(type='CenterCrop', size=size))(dict(img=src.copy()))
    ch, cw = (size, size) if isinstance(size, int) else size
    np.testing.assert_array_equal(out['img'], src[y0:y0 + ch, x0:x0 + cw])
    assert out['img_shape'] == (ch, cw) and out['crop_bbox'] == (x0, y0, x0 + cw, y0 + ch)
    assert out['img'].flags.c_contiguous


def test_center_crop_padded_on_one_side_only():
    """Crop (45, 31) of a 37 x 53 image: 8 rows of reflection (4 + 4), no column padding, then the centre 31 columns.
    And (40, 60): 3 rows (1 before, 2 after), 7 columns (3 before, 4 after)."""
    src = image(seed=5)
    out = build(dict(type='CenterCrop', size=(45, 31)))(dict(img=src.copy()))
    np.testing.assert_array_equal(out['img'], hand_pad(src, 4, 4, 0, 0, 'reflect')[:, 11:42])
    assert out['crop_bbox'] == (11, 0, 42, 45)
    out = build(dict(type='CenterCrop', size=(40, 60)))(dict(img=src.copy()))
    np.testing.assert_array_equal(out['img'], hand_pad(src, 1, 2, 3, 4, 'reflect'))
    assert out['crop_bbox'] == (0, 0, 60, 40)


# ----------------------------------------------------------------------------------------------- RandomCrop
def _hand_window(seed: int, h: int, w: int, ch: int, cw: int) -> tuple[int, int]:
    """The seeded window: NumPy's global stream draws the top row first, then the left column."""
    rs = np.random.RandomState(seed)
    y0 = int(rs.randint(0, h - ch + 1))
    x0 = int(rs.randint(0, w - cw + 1))
    return y0, x0


@pytest.mark.parametrize('seed', [0, 7, 123])
def test_random_crop_window_is_the_seeded_one(seed):
    src = image(seed=6)
    np.random.seed(seed)
    out = build(dict(type='RandomCrop', size=(19, 30)))(dict(img=src.copy()))
    y0, x0 = _hand_window(seed, H, W, 19, 30)
    np.testing.assert_array_equal(out['img'], src[y0:y0 + 19, x0:x0 + 30])
    assert out['crop_bbox'] == (x0, y0, x0 + 30, y0 + 19) and out['img_shape'] == (19, 30)


def test_random_crop_windows_cover_every_offset():
    """Over many draws the top-left corner takes every value in ``[0, H - h] x [0, W - w]`` (no off-by-one)."""
    src = image(9, 12, seed=7)
    np.random.seed(1)
    t = build(dict(type='RandomCrop', size=(6, 10)))
    seen = {t(dict(img=src.copy()))['crop_bbox'][:2] for _ in range(300)}
    assert seen == {(x, y) for x in range(3) for y in range(4)}


@pytest.mark.parametrize('pad_mode', ['reflect', 'constant', 'edge'])
def test_random_crop_partially_padded(pad_mode):
    """Crop (41, 50) of 37 x 53: 4 rows of padding (2 + 2) in ``pad_mode``, none in width; the window is the seeded
    one in the padded image."""
    src = image(seed=8)
    np.random.seed(5)
    out = build(dict(type='RandomCrop', size=(41, 50), pad_mode=pad_mode))(dict(img=src.copy()))
    padded = hand_pad(src, 2, 2, 0, 0, pad_mode)
    y0, x0 = _hand_window(5, 41, 53, 41, 50)
    assert y0 == 0
    np.testing.assert_array_equal(out['img'], padded[y0:y0 + 41, x0:x0 + 50])
    if pad_mode == 'constant':
        assert (out['img'][:2] == 0).all() and (out['img'][-2:] == 0).all()


def test_random_crop_one_pixel_side_uses_edge_padding():
    src = image(1, 7, seed=9)
    np.random.seed(2)
    out = build(dict(type='RandomCrop', size=(4, 5)))(dict(img=src.copy()))
    y0, x0 = _hand_window(2, 4, 7, 4, 5)
    np.testing.assert_array_equal(out['img'], hand_pad(src, 1, 2, 0, 0, 'edge')[y0:y0 + 4, x0:x0 + 5])


# ----------------------------------------------------------------------------------------------- RandomResizedCrop
def _hand_rrc_box(seed: int, h: int, w: int, scale, ratio) -> tuple[int, int, int, int] | None:
    """torchvision's ``RandomResizedCrop.get_params`` algorithm on NumPy's stream: up to 10 tries of an area fraction
    uniform in ``scale`` and a log-uniform ``w / h`` ratio; returns ``(x0, y0, cw, ch)`` (``None``: all 10 missed)."""
    rs = np.random.RandomState(seed)
    for _ in range(10):
        target = h * w * rs.uniform(scale[0], scale[1])
        aspect = math.exp(rs.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            y0 = int(rs.randint(0, h - ch + 1))
            x0 = int(rs.randint(0, w - cw + 1))
            return x0, y0, cw, ch
    return None


@pytest.mark.parametrize('seed', [0, 3, 11])
@pytest.mark.parametrize('interp', ['bicubic', 'bilinear'])
def test_random_resized_crop_box_and_pixels(seed, interp):
    """Non-default scale / ratio, a non-square output ``(12, 20)``: the box is the seeded one and the pixels equal
    torchvision's ``resized_crop`` of the PIL image with the same box and filter."""
    scale, ratio = (0.3, 0.7), (0.6, 2.5)
    src = image(seed=10)
    np.random.seed(seed)
    out = build(dict(type='RandomResizedCrop', size=(12, 20), scale=scale, ratio=ratio,
                     interpolation=interp))(dict(img=src.copy()))
    box = _hand_rrc_box(seed, H, W, scale, ratio)
    assert box is not None
    x0, y0, cw, ch = box
    assert out['crop_bbox'] == (x0, y0, x0 + cw, y0 + ch)
    assert scale[0] - 0.05 < cw * ch / (H * W) < scale[1] + 0.05
    assert ratio[0] * 0.8 < cw / ch < ratio[1] * 1.2
    mode = InterpolationMode.BICUBIC if interp == 'bicubic' else InterpolationMode.BILINEAR
    ref = np.asarray(TF.resized_crop(Image.fromarray(src), y0, x0, ch, cw, [12, 20], mode))
    assert out['img'].shape == (12, 20, 3) and out['img_shape'] == (12, 20)
    np.testing.assert_array_equal(out['img'], ref)


@pytest.mark.parametrize('hw,ratio', [((10, 200), (0.5, 2.0)),  # too wide: full height, width h * max ratio
                                      ((200, 10), (0.5, 2.0)),  # too tall: full width, height w / min ratio
                                      ((37, 53), (3.0, 4.0))])  # 53 / 37 < 3: height 53 / 3 = 17.7 -> 18
def test_random_resized_crop_fallback_matches_torchvision(hw, ratio):
    """An area of 95-100% at a ratio the image cannot hold: every try fails and the centre fallback box is
    torchvision's ``get_params`` box (deterministic there too); pixels as torchvision's ``resized_crop``."""
    h, w = hw
    scale = (0.95, 1.0)
    src = image(h, w, seed=12)
    i, j, ch, cw = TVRandomResizedCrop.get_params(Image.fromarray(src), scale, ratio)
    np.random.seed(0)
    t = build(dict(type='RandomResizedCrop', size=(8, 6), scale=scale, ratio=ratio, interpolation='bilinear'))
    out = t(dict(img=src.copy()))
    assert out['crop_bbox'] == (j, i, j + cw, i + ch)
    ref = np.asarray(TF.resized_crop(Image.fromarray(src), i, j, ch, cw, [8, 6], InterpolationMode.BILINEAR))
    np.testing.assert_array_equal(out['img'], ref)


def test_random_resized_crop_fallback_inside_the_ratio_range_is_the_whole_image():
    """Whole-area crops at ratios 0.2-5 around the image's 53 / 37: a seed whose 10 tries all miss (found with the
    hand algorithm) falls back to the whole image."""
    scale, ratio = (1.0, 1.0), (0.2, 5.0)
    seed = next(s for s in range(1000) if _hand_rrc_box(s, H, W, scale, ratio) is None)
    src = image(seed=21)
    np.random.seed(seed)
    out = build(dict(type='RandomResizedCrop', size=(H, W), scale=scale, ratio=ratio,
                     interpolation='nearest'))(dict(img=src.copy()))
    assert out['crop_bbox'] == (0, 0, W, H)
    np.testing.assert_array_equal(out['img'], src)


# ----------------------------------------------------------------------------------------------- RandomFlip
@pytest.mark.parametrize('direction,flip', [('horizontal', lambda a: a[:, ::-1]), ('vertical', lambda a: a[::-1]),
                                            ('diagonal', lambda a: a[::-1, ::-1])])
def test_random_flip_directions(direction, flip):
    src = image(seed=13)
    out = build(dict(type='RandomFlip', prob=1.0, direction=direction))(dict(img=src.copy()))
    np.testing.assert_array_equal(out['img'], flip(src))
    assert out['flip'] and out['flip_direction'] == direction and out['img'].flags.c_contiguous
    if direction == 'horizontal':
        np.testing.assert_array_equal(out['img'], np.asarray(TF.hflip(Image.fromarray(src))))
    if direction == 'vertical':
        np.testing.assert_array_equal(out['img'], np.asarray(TF.vflip(Image.fromarray(src))))


def test_random_flip_decision_is_the_seeded_one():
    """p = 0.3 (so p and 1 - p differ): flip iff the seeded uniform draw is below 0.3 (``np.random.choice``)."""
    src = image(seed=14)
    t = build(dict(type='RandomFlip', prob=0.3))
    assert t.direction == 'horizontal'
    flips = []
    for seed in range(40):
        np.random.seed(seed)
        out = t(dict(img=src.copy()))
        want = np.random.RandomState(seed).random_sample() < 0.3
        assert out['flip'] == want, seed
        np.testing.assert_array_equal(out['img'], src[:, ::-1] if want else src)
        flips.append(want)
    assert 4 <= sum(flips) <= 20
    np.random.seed(0)
    assert not any(build(dict(type='RandomFlip', prob=0.0))(dict(img=src.copy()))['flip'] for _ in range(20))


# ----------------------------------------------------------------------------------------------- PackVAEInputs
def test_pack_matches_torchvision_pil_to_tensor():
    """uint8 ``(3, H, W)``, values unscaled (0..255), contiguous also from a non-contiguous (flipped) view; a 2-D gray
    image becomes three equal channels; metadata as given."""
    src = image(seed=15)
    view = src[:, ::-1]
    out = build(dict(type='PackVAEInputs'))(dict(img=view, img_path='a/b.png', ori_shape=(74, 106), gt_label=7,
                                                  skipped=['x.png']))
    ref = TF.pil_to_tensor(Image.fromarray(np.ascontiguousarray(view)))
    assert out['inputs'].dtype == torch.uint8 and out['inputs'].is_contiguous()
    assert torch.equal(out['inputs'], ref) and out['inputs'].shape == (3, H, W)
    assert out['data_samples'] == dict(img_path='a/b.png', ori_shape=(74, 106), img_shape=(H, W), label=7,
                                       skipped=['x.png'])
    gray = src[..., 1]
    out = build(dict(type='PackVAEInputs'))(dict(img=gray))
    assert torch.equal(out['inputs'], torch.from_numpy(gray)[None].expand(3, H, W))
    assert out['data_samples']['label'] == -1 and out['data_samples']['ori_shape'] == (H, W)
    with pytest.raises(TypeError, match='uint8'):
        build(dict(type='PackVAEInputs'))(dict(img=src.astype(np.float32) / 255))


# ----------------------------------------------------------------------------------------------- LoadImageRGB
def load(path) -> np.ndarray:
    out = build(dict(type='LoadImageRGB'))(dict(img_path=str(path)))
    assert out is not None, path
    assert out['img_shape'] == out['ori_shape'] == out['img'].shape[:2]
    assert out['img'].dtype == np.uint8 and out['img'].flags.c_contiguous
    return out['img']


# EXIF orientation -> what the viewer shows, written as index operations on the stored (h, w) array
_ORIENT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize('orientation', range(1, 9))
def test_load_exif_orientation_every_value(tmp_path, orientation):
    """All eight EXIF orientations on a lossless 37 x 53 PNG (``eXIf`` chunk): the loaded array is the stored one
    rotated / mirrored as the tag says."""
    src = image(seed=16)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(src).save(tmp_path / 'o.png', exif=exif.tobytes())
    np.testing.assert_array_equal(load(tmp_path / 'o.png'), _ORIENT[orientation](src))


def test_load_alpha_composited_on_white(tmp_path):
    """RGBA and LA with every alpha value: ``round(c * a / 255 + 255 * (1 - a / 255))`` per channel."""
    a = np.tile(np.arange(256, dtype=np.uint8), 8)[:H * W].reshape(H, W)
    rgb = image(seed=17)
    Image.fromarray(np.dstack([rgb, a])).save(tmp_path / 'rgba.png')
    alpha = a[..., None] / 255.0
    want = np.round(rgb * alpha + 255.0 * (1 - alpha))
    np.testing.assert_array_equal(load(tmp_path / 'rgba.png'), want.astype(np.uint8))
    g = rgb[..., 0]
    Image.merge('LA', [Image.fromarray(g), Image.fromarray(a)]).save(tmp_path / 'la.png')
    want = np.round(g * (a / 255.0) + 255.0 * (1 - a / 255.0)).astype(np.uint8)
    np.testing.assert_array_equal(load(tmp_path / 'la.png'), np.repeat(want[..., None], 3, 2))


def test_load_16bit_scales_by_the_file_depth(tmp_path):
    """16-bit gray: ``round(v * 255 / 65535)``, also for a dark image (all values <= 255 map to 0 or 1)."""
    v = np.random.RandomState(18).randint(0, 65536, (H, W)).astype(np.uint16)
    v[0, :3] = (0, 128, 65535)
    Image.fromarray(v).save(tmp_path / 'v.png')
    want = np.round(v.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(load(tmp_path / 'v.png'), np.repeat(want[..., None], 3, 2))
    dark = (v % 256).astype(np.uint16)
    Image.fromarray(dark).save(tmp_path / 'dark.png')
    got = load(tmp_path / 'dark.png')[..., 0]
    np.testing.assert_array_equal(got, (dark >= 129).astype(np.uint8))  # 128.5 / 257 = 0.5 is the rounding point
    assert got.max() == 1


def test_load_palette_with_and_without_transparency(tmp_path):
    """Palette images: the palette lookup; the transparent index on white; a partially transparent entry (tRNS)
    composited as alpha."""
    idx = np.random.RandomState(19).randint(0, 4, (H, W)).astype(np.uint8)
    palette = [10, 20, 30, 200, 100, 50, 0, 255, 0, 90, 90, 250]
    p = Image.fromarray(idx, mode='P')
    p.putpalette(palette + [0] * (768 - len(palette)))
    p.save(tmp_path / 'p.png')
    lut = np.array(palette, np.uint8).reshape(4, 3)
    np.testing.assert_array_equal(load(tmp_path / 'p.png'), lut[idx])
    p.save(tmp_path / 't.png', transparency=bytes([255, 0, 128, 255]))  # index 1 clear, index 2 half
    alpha = np.array([255, 0, 128, 255], np.float64)[idx][..., None] / 255
    want = np.round(lut[idx] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    np.testing.assert_array_equal(load(tmp_path / 't.png'), want)


def test_load_rgb_and_gray_are_exact(tmp_path):
    src = image(seed=20)
    Image.fromarray(src).save(tmp_path / 'rgb.png')
    np.testing.assert_array_equal(load(tmp_path / 'rgb.png'), src)
    Image.fromarray(src[..., 2]).save(tmp_path / 'g.png')
    np.testing.assert_array_equal(load(tmp_path / 'g.png'), np.repeat(src[..., 2:], 3, 2))


# ----------------------------------------------------------------------------------------------- LoadImageRGBDraft
@pytest.mark.parametrize('min_size, flag', [(18, cv2.IMREAD_REDUCED_COLOR_2), (9, cv2.IMREAD_REDUCED_COLOR_4),
                                            (4, cv2.IMREAD_REDUCED_COLOR_8), (30, cv2.IMREAD_COLOR)])
def test_load_draft_equals_opencv_scaled_jpeg_decode(tmp_path, min_size, flag):
    """A 53 x 37 JPEG decoded at 1/2, 1/4, 1/8 (both sides >= min_size; ceil) equals OpenCV's own libjpeg DCT-scaled
    decode (``IMREAD_REDUCED_COLOR_k``) exactly; min_size 30 allows no reduction: the full decode."""
    Image.fromarray(image(seed=21)).save(tmp_path / 'a.jpg', quality=90)
    out = build(dict(type='LoadImageRGBDraft', min_size=min_size))(dict(img_path=str(tmp_path / 'a.jpg')))
    want = cv2.imread(str(tmp_path / 'a.jpg'), flag)[..., ::-1]
    assert out['img'].shape == want.shape and out['img_shape'] == want.shape[:2]
    np.testing.assert_array_equal(out['img'], want)


# ----------------------------------------------------------------------------------------------- the table
TRANSFORM_REFERENCES = {
    'ResizeShortSide': ('test_resize_short_side_size_and_pixels', 'test_resize_short_side_is_antialiased'),
    'CenterCrop': ('test_center_crop_odd_sizes', 'test_center_crop_padded_on_one_side_only'),
    'RandomCrop': ('test_random_crop_window_is_the_seeded_one', 'test_random_crop_partially_padded'),
    'RandomResizedCrop': ('test_random_resized_crop_box_and_pixels',
                          'test_random_resized_crop_fallback_matches_torchvision'),
    'RandomFlip': ('test_random_flip_directions', 'test_random_flip_decision_is_the_seeded_one'),
    'PackVAEInputs': ('test_pack_matches_torchvision_pil_to_tensor', ),
    'LoadImageRGB': ('test_load_exif_orientation_every_value', 'test_load_alpha_composited_on_white',
                     'test_load_16bit_scales_by_the_file_depth', 'test_load_palette_with_and_without_transparency'),
    'LoadImageRGBDraft': ('test_load_draft_equals_opencv_scaled_jpeg_decode', ),
}


def _registered_transforms() -> list[str]:
    """Every name in transvae's ``TRANSFORMS`` registry (not its mmcv / mmengine parents)."""
    return sorted(TRANSFORMS.module_dict)


@pytest.mark.parametrize('name', _registered_transforms())
def test_every_registered_transform_has_a_reference(name):
    cls = TRANSFORMS.get(name)
    if not cls.__module__.startswith('transvae.'):
        pytest.skip(f'{name} is registered from {cls.__module__}: no reference known here')
    if name not in TRANSFORM_REFERENCES:
        pytest.fail(f'{name} ({cls.__module__}) is a registered transform without a value reference: add its tests '
                    'to TRANSFORM_REFERENCES in tests/test_datasets/test_transform_references.py')
    for test_name in TRANSFORM_REFERENCES[name]:
        assert callable(globals().get(test_name)), test_name


def test_the_table_covers_the_transforms_package():
    """The eight transforms registered by ``transvae/datasets/transforms`` are all in the registry and the table."""
    names = {n for n, c in TRANSFORMS.module_dict.items() if c.__module__.startswith('transvae.datasets.transforms')}
    assert names == set(TRANSFORM_REFERENCES)


@pytest.mark.parametrize('cfg', [dict(type='RandomCrop', size=8, pad_mode='reflct'),
                                 dict(type='ResizeShortSide', size=True), dict(type='RandomCrop', size=True),
                                 dict(type='RandomCrop', size=(8, True))],
                         ids=['pad_mode typo', 'bool size', 'bool crop', 'bool in pair'])
def test_bad_settings_refused_at_build(cfg):
    """A misspelt pad mode failed only at the first image smaller than the crop (mid-training); a bool was a size."""
    with pytest.raises(ValueError):
        TRANSFORMS.build(cfg)
