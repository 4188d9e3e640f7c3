"""``transvae/datasets/transforms``: the cases the mutation run (tools/analysis_tools/mutation.sh, docs/TESTING.md)
found unpinned: high-bit-depth and float PIL images (modes ``F``, ``I;16``, ``I``) to uint8 by hand values chosen on
the rounding edges, PackVAEInputs' defaults, RandomResizedCrop's argument checks, its fallback box against
torchvision's ``get_params``, and its random boxes on one-pixel-wide images (inside the image, every offset drawn)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from transvae.datasets.transforms import PackVAEInputs, RandomResizedCrop
from transvae.datasets.transforms.loading import pil_to_rgb_array


def gray(img: Image.Image) -> np.ndarray:
    rgb = pil_to_rgb_array(img)
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and (rgb == rgb[..., :1]).all()
    return rgb[..., 0]


# ============================================================================================ bit depths to uint8
def test_float_images_in_unit_range_are_scaled_by_255():
    """Mode F with data in [0, 1] (both ends present): x 255, rounded half to even; [-0.5, 0.5] is not in range."""
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0, 0.25]], dtype=np.float32), mode='F')
    np.testing.assert_array_equal(gray(img), [[0, 128, 255, 64]])
    img = Image.fromarray(np.array([[-0.5, 0.5]], dtype=np.float32), mode='F')
    np.testing.assert_array_equal(gray(img), [[0, 0]])


def test_float_images_out_of_range_are_clipped_not_scaled():
    img = Image.fromarray(np.array([[-3.0, 0.4, 300.7, 12.5, np.nan, 1.5]], dtype=np.float32), mode='F')
    np.testing.assert_array_equal(gray(img), [[0, 0, 255, 12, 0, 2]])


def test_sixteen_bit_images_scale_by_255_over_65535():
    """I;16: 257 k -> k; 64379 = 250.502 * 257 -> 251 (a 65536 denominator would give 250.498 -> 250); a dark
    16-bit image stays dark (its depth comes from the file, not from its maximum)."""
    img = Image.fromarray(np.array([[0, 65535, 257, 64379, 1000]], dtype=np.uint16))
    assert img.mode.startswith('I;16')
    np.testing.assert_array_equal(gray(img), [[0, 255, 1, 251, 4]])


def test_thirty_two_bit_images_use_the_16_bit_range_unless_exceeded():
    """Mode I: the 16-bit range by default (dark data stays dark); above 65535 the data is scaled by its maximum
    (65536 -> 255, 64379 -> 250: 250.498); negative values clip to 0."""
    img = Image.fromarray(np.array([[0, 1000, 64379, -70000]], dtype=np.int32))
    assert img.mode == 'I'
    np.testing.assert_array_equal(gray(img), [[0, 4, 251, 0]])
    img = Image.fromarray(np.array([[0, 65536, 64379, 32768]], dtype=np.int32))
    np.testing.assert_array_equal(gray(img), [[0, 255, 250, 128]])


# =================================================================================================== packing
def test_pack_inputs_defaults_and_the_label_key():
    img = np.zeros((2, 3, 3), dtype=np.uint8)
    out = PackVAEInputs()(dict(img=img))
    assert out['data_samples']['img_path'] == '' and out['data_samples']['label'] == -1
    assert PackVAEInputs()(dict(img=img, label=3))['data_samples']['label'] == 3
    assert PackVAEInputs()(dict(img=img, label=3, gt_label=5))['data_samples']['label'] == 5


# ========================================================================================== RandomResizedCrop
@pytest.mark.parametrize('scale,ratio', [((0.5, 1.5), (1.0, 1.0)), ((0.0, 1.0), (1.0, 1.0)),
                                         ((0.5, 1.0), (0.0, 1.0)), ((0.5, 1.0), (2.0, 1.0))])
def test_random_resized_crop_refuses_bad_ranges(scale, ratio):
    with pytest.raises(ValueError, match=r'^need 0 < scale\[0\] <= scale\[1\] <= 1 and 0 < ratio\[0\] <= ratio\[1\], '
                                         rf'got scale={scale}, ratio={ratio}$'.replace('(', r'\(').replace(')', r'\)')):
        RandomResizedCrop(4, scale=scale, ratio=ratio)


def test_random_resized_crop_accepts_a_single_ratio():
    assert RandomResizedCrop(4, scale=(1.0, 1.0), ratio=(1.0, 1.0)).ratio == (1.0, 1.0)


@pytest.mark.parametrize('hw,scale,ratio', [((30, 50), (0.95, 1.0), (2.0, 3.0)), ((50, 30), (0.95, 1.0), (0.2, 0.3)),
                                            ((4, 1), (0.08, 0.1), (0.1, 0.1)), ((1, 4), (0.08, 0.1), (10., 10.))])
def test_random_resized_crop_fallback_matches_torchvision(hw, scale, ratio):
    """Where no random box fits (10 tries), the centre crop of the clamped ratio, as torchvision's get_params; the
    last two are 1-pixel-wide images whose tries give a zero side (a zero-width box must not be taken; the fallback
    keeps one pixel where torchvision's gives a zero side)."""
    from torchvision.transforms import RandomResizedCrop as TVRandomResizedCrop
    np.random.seed(0)
    torch.manual_seed(0)
    i, j, th, tw = TVRandomResizedCrop.get_params(torch.zeros(1, *hw), list(scale), list(ratio))
    tw, th = max(tw, 1), max(th, 1)  # torchvision returns a zero side there; ours keeps at least one pixel
    t = RandomResizedCrop(2, scale=scale, ratio=ratio)
    for _ in range(3):
        assert t._get_box(*hw) == (j, i, tw, th)
    out = t(dict(img=np.zeros((*hw, 3), dtype=np.uint8)))
    assert out['crop_bbox'] == (j, i, j + tw, i + th) and out['img'].shape == (2, 2, 3)


@pytest.mark.parametrize('hw,ratio', [((1, 40), (4.0, 4.0)), ((40, 1), (0.25, 0.25)), ((6, 9), (1.5, 1.5))])
def test_random_resized_crop_random_boxes_stay_inside_and_cover_every_offset(hw, ratio):
    """One-pixel-wide images (a 4 x 1 box at scale 0.1) and a full-size box (scale 1, the image's own ratio): every
    box lies inside the image and, over 200 draws, every admissible offset appears."""
    h, w = hw
    scale = (1.0, 1.0) if hw == (6, 9) else (0.1, 0.1)
    t = RandomResizedCrop(2, scale=scale, ratio=ratio)
    np.random.seed(1)
    boxes = [t._get_box(h, w) for _ in range(200)]
    cw, ch = boxes[0][2], boxes[0][3]
    assert all(b[2:] == (cw, ch) for b in boxes) and (cw, ch) == ((4, 1) if w == 40 else (1, 4) if h == 40 else (9, 6))
    assert all(0 <= x0 and x0 + cw <= w and 0 <= y0 and y0 + ch <= h for x0, y0, _, _ in boxes)
    assert {x0 for x0, _, _, _ in boxes} == set(range(w - cw + 1))
    assert {y0 for _, y0, _, _ in boxes} == set(range(h - ch + 1))


# ================================================================================== messages, resolution, repr
def test_pil_bomb_messages():
    """PIL's own DecompressionBombError: above our limit -> the size and both limits; allowed by ours -> PIL's."""
    from transvae.datasets.transforms.loading import _pil_bomb_error
    err = Image.DecompressionBombError('Image size (200000000 pixels) exceeds limit of 178956970 pixels, could be '
                                       'decompression bomb DOS attack.')
    msg = str(_pil_bomb_error('a.png', err, 1000, 'max_pixels=...'))
    assert msg == ("image too large to decode: 'a.png' is 200,000,000 pixels, above the limit of 1,000 pixels (a "
                   "decompression-bomb guard). If the file is trusted, raise the limit with max_pixels=... and PIL's "
                   f"process-wide PIL.Image.MAX_IMAGE_PIXELS (now {Image.MAX_IMAGE_PIXELS}), which refuses it too.")
    for limit in (None, 300_000_000):
        msg = str(_pil_bomb_error('a.png', err, limit, 'max_pixels=...'))
        assert msg == ("image too large to decode: 'a.png' is refused by PIL's own decompression-bomb check "
                       f"({err}); max_pixels={limit} allows it, but PIL's process-wide PIL.Image.MAX_IMAGE_PIXELS "
                       "must be raised too to decode such a file.")
    msg = str(_pil_bomb_error('a.png', ValueError('no count here'), 1000, 'x'))
    assert msg.startswith("image too large to decode: 'a.png' is refused by PIL's own decompression-bomb check")


def test_set_pipeline_resolution_sets_declared_keys_only():
    from transvae.datasets.transforms.resolution import resolution_keys, set_pipeline_resolution, transform_class
    pipeline = [dict(type='LoadImageRGB'), dict(type='RandomResizedCrop', size=(3, 4)), dict(type='CenterCrop'),
                'not a dict', dict(type='NoSuchTransform', size=5), dict(type='ResizeShortSide', size=7)]
    assert set_pipeline_resolution(pipeline, 64) == 3
    assert pipeline[1]['size'] == [64, 64] and pipeline[2]['size'] == 64 and pipeline[5]['size'] == 64
    assert pipeline[4]['size'] == 5 and 'size' not in pipeline[0]
    assert set_pipeline_resolution(None, 64) == 0
    assert resolution_keys(dict(type='CenterCrop')) == ('size', ) and resolution_keys(dict(type='LoadImageRGB')) == ()
    assert resolution_keys(dict(type='NoSuchTransform')) == () and transform_class(dict(type='NoSuchTransform')) is None
    assert transform_class(dict(type='RandomResizedCrop')) is RandomResizedCrop


def test_load_image_repr():
    from transvae.datasets.transforms import LoadImageRGB
    assert repr(LoadImageRGB(cache_mb=1.5, max_pixels=1000)) == 'LoadImageRGB(cache_mb=1.5, max_pixels=1000)'


# ============================================================================ palette / alpha images, pixel limits
def test_palette_and_alpha_images_against_pil():
    """P without transparency: PIL's own RGB conversion; with a transparent index and LA: composited on the
    background by hand (``a * c + (1 - a) * bg``, rounded)."""
    rng = np.random.default_rng(0)
    p = Image.fromarray(rng.integers(0, 4, (3, 5), dtype=np.uint8), mode='P')
    p.putpalette([10, 20, 30, 200, 100, 0, 0, 255, 0, 90, 90, 90])
    np.testing.assert_array_equal(pil_to_rgb_array(p), np.asarray(p.convert('RGB')))
    p.info['transparency'] = 1  # index 1 is transparent: those pixels become the background
    want = np.asarray(p.convert('RGB')).copy()
    want[np.asarray(p) == 1] = (255, 255, 255)
    np.testing.assert_array_equal(pil_to_rgb_array(p), want)
    la = np.stack([np.full((2, 3), 200, np.uint8), np.array([[0, 128, 255], [64, 32, 255]], np.uint8)], axis=-1)
    img = Image.fromarray(la, mode='LA')
    a = la[..., 1:2] / 255.0
    want = np.rint(a * 200 + (1 - a) * np.array([0, 40, 250])).astype(np.uint8)
    got = pil_to_rgb_array(img, background=(0, 40, 250))
    assert np.abs(got.astype(int) - want).max() <= 1  # PIL's integer compositing rounds within one level


def test_pixel_limit_messages_and_boundary():
    from transvae.datasets.transforms import LoadImageRGB
    from transvae.datasets.transforms.loading import ImageTooLargeError, check_image_pixels
    check_image_pixels((30, 20), 600, 'a.png')  # exactly at the limit: allowed
    check_image_pixels((10**6, 10**6), None, 'a.png')  # no limit
    with pytest.raises(ImageTooLargeError) as err:
        check_image_pixels((3000, 2000), 5_999_999, "'a.png'")
    assert str(err.value) == ("image too large to decode: 'a.png' is 3000x2000 = 6,000,000 pixels, above the limit "
                              "of 5,999,999 pixels (a decompression-bomb guard; decoding would take about 17 MiB as "
                              "RGB). If the file is trusted, raise the limit with max_pixels=... (None disables it).")
    assert LoadImageRGB(max_pixels=1).max_pixels == 1 and LoadImageRGB(max_pixels=np.int64(7)).max_pixels == 7
    assert LoadImageRGB(max_pixels=2.5).max_pixels == 2 and LoadImageRGB(max_pixels=None).max_pixels is None
    for bad in (True, '5', 0, 0.5, float('inf'), float('nan')):
        with pytest.raises(ValueError) as err:
            LoadImageRGB(max_pixels=bad)
        assert str(err.value) == f'max_pixels must be a positive number of pixels or None (no limit), got {bad!r}'


# ================================================================================================= file decoding
def test_decode_refuses_empty_truncated_and_too_large_files(tmp_path):
    """An empty file, a truncated PNG (PIL's warning turned into an error even where another module allowed
    truncated images), and a header above the limit (refused before decoding, the default hint named)."""
    from PIL import ImageFile

    from transvae.datasets.transforms.loading import ImageTooLargeError, decode_image_rgb
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(OSError, match=r'^empty file$'):
        decode_image_rgb(str(empty))
    img = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    good = tmp_path / 'good.png'
    Image.fromarray(img).save(good)
    np.testing.assert_array_equal(decode_image_rgb(str(good)), img)
    np.testing.assert_array_equal(decode_image_rgb(str(good), max_pixels=1200), img)  # 30 x 40: at the limit
    with pytest.raises(ImageTooLargeError) as err:
        decode_image_rgb(str(good), max_pixels=1199)
    msg = str(err.value)
    assert msg.startswith(f"image too large to decode: {str(good)!r} is 30x40 = 1,200 pixels, above the limit of "
                          "1,199 pixels") and 'decode_image_rgb(path, max_pixels=...)' in msg
    data = good.read_bytes()
    cut = tmp_path / 'cut.png'
    cut.write_bytes(data[:len(data) * 2 // 3])
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(OSError):
            decode_image_rgb(str(cut))
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    with pytest.raises(ValueError, match=r'^max_pixels must be a positive number'):
        decode_image_rgb(str(good), max_pixels=0)


# ==================================================================================== resize, pad, size checks
def test_pad_to_by_hand():
    """Symmetric padding (the extra pixel after), reflection; a 1-pixel side pads by its edge; only one side short."""
    from transvae.datasets.transforms.processing import _pad_to
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(_pad_to(img, (2, 6)), np.pad(img, ((0, 0), (1, 2), (0, 0)), mode='reflect'))
    np.testing.assert_array_equal(_pad_to(img, (5, 3)), np.pad(img, ((1, 2), (0, 0), (0, 0)), mode='reflect'))
    row = img[:1]  # 1 x 3: edge padding vertically, reflection impossible
    np.testing.assert_array_equal(_pad_to(row, (3, 5)), np.pad(row, ((1, 1), (1, 1), (0, 0)), mode='edge'))
    col = img[:, :1]  # 2 x 1
    np.testing.assert_array_equal(_pad_to(col, (2, 4)), np.pad(col, ((0, 0), (1, 2), (0, 0)), mode='edge'))
    np.testing.assert_array_equal(_pad_to(col, (2, 4), mode='constant'),
                                  np.pad(col, ((0, 0), (1, 2), (0, 0)), mode='constant'))
    assert _pad_to(img, (2, 3)) is img


def test_resize_area_up_or_down_per_side_and_defaults():
    """``area``: cv2's INTER_AREA when shrinking both sides, INTER_CUBIC as soon as one side grows; bicubic (PIL) is
    the default interpolation."""
    import cv2

    from transvae.datasets.transforms.processing import resize_image
    img = np.random.default_rng(2).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    for hw in ((4, 12), (8, 6), (6, 12), (3, 9)):
        up = hw[0] > 6 or hw[1] > 9
        want = cv2.resize(img, hw[::-1], interpolation=cv2.INTER_CUBIC if up else cv2.INTER_AREA)
        np.testing.assert_array_equal(resize_image(img, hw, 'area'), want)
    np.testing.assert_array_equal(resize_image(img, (4, 5)),
                                  np.asarray(Image.fromarray(img).resize((5, 4), resample=Image.BICUBIC)))
    assert resize_image(img, (6, 9)) is img
    with pytest.raises(ValueError, match=r"^interpolation must be one of \("):
        resize_image(img, (4, 5), 'cubic')


def test_resize_short_side_sizes_and_checks():
    from transvae.datasets.transforms import ResizeShortSide
    img = np.zeros((3, 400, 3), dtype=np.uint8)  # wide: short side 3 -> 1, long side 133
    out = ResizeShortSide(1)(dict(img=img))
    assert out['img'].shape == (1, 133, 3) and out['img_shape'] == (1, 133)
    out = ResizeShortSide(1)(dict(img=np.zeros((400, 3, 3), dtype=np.uint8)))
    assert out['img'].shape == (133, 1, 3) and out['scale_factor'] == (1 / 3, 133 / 400)
    out = ResizeShortSide(4)(dict(img=np.zeros((6, 6, 3), dtype=np.uint8)))  # square: both sides to 4
    assert out['img'].shape == (4, 4, 3)
    for hw in ((3, 4), (4, 3)):  # the long side rounds to 1 pixel: kept at 1
        assert ResizeShortSide(1)(dict(img=np.zeros((*hw, 3), dtype=np.uint8)))['img'].shape == (1, 1, 3)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match=rf'^size must be a positive int, got {bad!r}$'):
            ResizeShortSide(bad)
    with pytest.raises(ValueError, match=r"^interpolation must be one of \('nearest', 'bilinear', 'bicubic', "
                                         r"'lanczos', 'area'\), got 'cubic'$"):
        ResizeShortSide(4, interpolation='cubic')


def test_size_pairs():
    from transvae.datasets.transforms.processing import _pair
    assert _pair(3) == (3, 3) and _pair([2, 5]) == (2, 5)
    for bad, msg in ((True, 'size must be an int or (h, w), got True'), ((1, 2, 3), 'size must be an int or (h, w), '
                                                                                     'got (1, 2, 3)'),
                     ((2, True), 'size must be an int or (h, w), got (2, True)'), (0, 'size must be positive, got 0'),
                     ((3, 0), 'size must be positive, got (3, 0)')):
        with pytest.raises(ValueError) as err:
            _pair(bad)
        assert str(err.value) == msg


# ============================================================ round 2 (mutation run of ba452f6): processing leftovers
def test_area_resize_down_in_one_side_only_is_opencvs_area():
    """``area`` shrinking the width with the height unchanged is a downscale: OpenCV's INTER_AREA (box averages of
    column pairs), not the cubic used for upscaling."""
    import cv2

    from transvae.datasets.transforms import resize_image
    img = np.random.default_rng(40).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    got = resize_image(img, (5, 4), 'area')
    np.testing.assert_array_equal(got, cv2.resize(img, (4, 5), interpolation=cv2.INTER_AREA))
    assert not np.array_equal(got, cv2.resize(img, (4, 5), interpolation=cv2.INTER_CUBIC))


def test_reflect_padding_of_a_two_pixel_side_is_numpys_reflect():
    """Two pixels are enough to reflect (only a one-pixel side falls back to edge padding)."""
    from transvae.datasets.transforms.processing import _pad_to
    img = np.arange(3 * 2 * 3, dtype=np.uint8).reshape(3, 2, 3)
    np.testing.assert_array_equal(_pad_to(img, (3, 4)), np.pad(img, ((0, 0), (1, 1), (0, 0)), mode='reflect'))
    assert _pad_to(img, (3, 4))[0, :, 0].tolist() == [3, 0, 3, 0]


def test_random_crop_pad_mode_message_and_flip_keeps_mmcv_options():
    from transvae.datasets.transforms import RandomCrop, RandomFlip
    with pytest.raises(ValueError) as err:
        RandomCrop(4, pad_mode='mirror')
    assert str(err.value) == ("pad_mode must be one of ('reflect', 'symmetric', 'edge', 'constant', 'wrap', "
                              "'linear_ramp', 'maximum', 'mean', 'median', 'minimum'), got 'mirror'")
    flip = RandomFlip(prob=0.25, direction='vertical', swap_seg_labels=[(1, 2)])
    assert (flip.prob, flip.direction, flip.swap_seg_labels) == (0.25, 'vertical', [(1, 2)])


def test_random_resized_crop_makes_exactly_ten_tries_before_its_fallback():
    """Like torchvision's ``get_params``: ten (scale, ratio) draws, then the central fallback box. With the whole
    area and ratios 2-3 on a square image every try is too wide; the global stream has then moved by exactly 20
    uniform draws, and the box is the full width at ratio 2, centred."""
    img = np.zeros((6, 6, 3), np.uint8)
    np.random.seed(5)
    out = RandomResizedCrop(size=4, scale=(1.0, 1.0), ratio=(2.0, 3.0))(dict(img=img))
    assert out['crop_bbox'] == (0, 1, 6, 4)
    ref = np.random.RandomState(5)
    ref.uniform(size=20)
    assert np.random.uniform() == ref.uniform()
