"""``transvae/datasets/transforms/loading.py`` on tiny real malformed files written here (issue 23's mutation run):
decompression bombs (PNG headers declaring more pixels than the limit, a few dozen bytes each: below and above twice
PIL's global limit, so both our header check and PIL's own ``DecompressionBombError`` run), a JPEG whose EXIF data is
truncated (PIL warns ``Truncated File Read``; the decoder turns that warning into an error), a truncated JPEG, the
full message of every refusal with ``==``, ``LoadImageRGB``'s hint and ``decode_error``, its decode cache
(the same read-only object while the budget lasts, a fresh decode after it), one-pixel-wide images, float and
palette images, and ``LoadImageRGBDraft``'s checks and hint. The slow end-to-end versions are
``tests/reliability/test_image_bombs.py`` / ``test_defects.py`` and ``tests/test_datasets/test_image_folder.py``."""
from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from transvae.datasets.transforms import LoadImageRGB, LoadImageRGBDraft, decode_image_rgb
from transvae.datasets.transforms.loading import ImageTooLargeError, pil_to_rgb_array


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def header_only_png(path, w: int, h: int) -> str:
    """A PNG that declares ``w x h`` 1-bit gray pixels and stores none (an empty IDAT): a bomb's header."""
    ihdr = struct.pack('>IIBBBBB', w, h, 1, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr) + _chunk(b'IDAT', zlib.compress(b''))
                     + _chunk(b'IEND', b''))
    return str(path)


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png(path, arr: np.ndarray) -> str:
    Image.fromarray(arr).save(path)
    return str(path)


# ================================================================================================ bombs
def test_header_above_the_default_limit_is_refused_before_decoding(tmp_path):
    """9460 x 9460 = 89,491,600 pixels, just above the default 89,478,485: our check, the default hint, no decode."""
    path = header_only_png(tmp_path / 'bomb.png', 9460, 9460)
    assert (tmp_path / 'bomb.png').stat().st_size < 100
    with pytest.raises(ImageTooLargeError) as err:
        decode_image_rgb(path)
    assert str(err.value) == (
        f"image too large to decode: {path!r} is 9460x9460 = 89,491,600 pixels, above the limit of 89,478,485 "
        "pixels (a decompression-bomb guard; decoding would take about 256 MiB as RGB). If the file is trusted, "
        "raise the limit with decode_image_rgb(path, max_pixels=...) (None disables it).")


def test_pils_own_bomb_error_is_reworded_with_both_limits(tmp_path):
    """20000 x 20000 is above twice PIL's global limit: ``Image.open`` itself refuses it (PIL's error, taken from PIL
    in this test, is the reference); our message names our limit when it is exceeded too (exactly at it: not)."""
    path = header_only_png(tmp_path / 'huge.png', 20000, 20000)
    with pytest.raises(Image.DecompressionBombError) as pil:
        Image.open(path)
    with pytest.raises(ImageTooLargeError) as err:
        decode_image_rgb(path, max_pixels=1000, hint='H(max_pixels=...)')
    assert str(err.value) == (
        f"image too large to decode: {path!r} is 400,000,000 pixels, above the limit of 1,000 pixels (a "
        "decompression-bomb guard). If the file is trusted, raise the limit with H(max_pixels=...) and PIL's "
        f"process-wide PIL.Image.MAX_IMAGE_PIXELS (now {Image.MAX_IMAGE_PIXELS}), which refuses it too.")
    assert isinstance(err.value.__cause__, Image.DecompressionBombError)
    for limit in (400_000_000, None):  # our limit allows it (at the limit, or none): PIL's global still refuses
        with pytest.raises(ImageTooLargeError) as err:
            decode_image_rgb(path, max_pixels=limit)
        assert str(err.value) == (
            f"image too large to decode: {path!r} is refused by PIL's own decompression-bomb check ({pil.value}); "
            f"max_pixels={limit} allows it, but PIL's process-wide PIL.Image.MAX_IMAGE_PIXELS must be raised too "
            "to decode such a file.")


def test_loaders_skip_bombs_with_their_own_hint(tmp_path):
    """The transforms never raise: the reason (with how to raise *their* limit) goes to ``decode_error``."""
    small = header_only_png(tmp_path / 'small.png', 3000, 2000)
    huge = header_only_png(tmp_path / 'huge.png', 20000, 20000)
    for t, name in ((LoadImageRGB(max_pixels=5_999_999), 'LoadImageRGB'),
                    (LoadImageRGBDraft(min_size=8, max_pixels=5_999_999), 'LoadImageRGBDraft')):
        results = dict(img_path=small)
        assert t(results) is None and set(results) == {'img_path', 'decode_error'}
        assert results['decode_error'] == (
            f"ImageTooLargeError: image too large to decode: {small!r} is 3000x2000 = 6,000,000 pixels, above the "
            "limit of 5,999,999 pixels (a decompression-bomb guard; decoding would take about 17 MiB as RGB). If "
            f"the file is trusted, raise the limit with {name}(max_pixels=...) in the pipeline (None disables it).")
        results = dict(img_path=huge)
        assert t(results) is None
        assert results['decode_error'] == (
            f"ImageTooLargeError: image too large to decode: {huge!r} is 400,000,000 pixels, above the limit of "
            f"5,999,999 pixels (a decompression-bomb guard). If the file is trusted, raise the limit with "
            f"{name}(max_pixels=...) in the pipeline and PIL's process-wide PIL.Image.MAX_IMAGE_PIXELS (now "
            f"{Image.MAX_IMAGE_PIXELS}), which refuses it too.")


# ====================================================================================== truncated files
def _jpeg_with_truncated_exif(path) -> str:
    """A valid 8 x 12 JPEG whose EXIF IFD0 has one ASCII tag of 20 bytes stored 2 bytes before the block's end."""
    tiff = bytearray(b'II*\x00' + struct.pack('<I', 8) + struct.pack('<H', 1)
                     + struct.pack('<HHII', 0x010E, 2, 20, 0) + struct.pack('<I', 0))
    tiff[18:22] = struct.pack('<I', len(tiff) - 2)
    Image.fromarray(rgb(8, 12, seed=3)).save(path, quality=95, exif=b'Exif\x00\x00' + bytes(tiff))
    return str(path)


def test_a_truncation_warning_from_pil_is_an_error(tmp_path):
    """PIL only *warns* ``Truncated File Read`` when EXIF data runs past its block (the pixels decode): the decoder
    refuses the file, with PIL's warning (checked here first) in the message."""
    from PIL import ImageOps
    path = _jpeg_with_truncated_exif(tmp_path / 'exif.jpg')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with Image.open(path) as img:
            img.load()
            ImageOps.exif_transpose(img)
    assert [str(w.message) for w in caught] == ['Truncated File Read']
    with pytest.raises(OSError) as err:
        decode_image_rgb(path)
    assert type(err.value) is OSError and str(err.value) == 'truncated image: Truncated File Read'
    results = dict(img_path=path)
    assert LoadImageRGB()(results) is None
    assert results['decode_error'] == 'OSError: truncated image: Truncated File Read'


def test_other_warnings_do_not_refuse_a_file(tmp_path):
    """PIL's DecompressionBombWarning (above its global limit, below twice it) is not a truncation: the file
    decodes (the global is lowered for this test only)."""
    arr = rgb(3, 5, seed=4)
    path = png(tmp_path / 'a.png', arr)
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 10
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            Image.open(path).close()
        assert [type(w.message) for w in caught] == [Image.DecompressionBombWarning]
        np.testing.assert_array_equal(decode_image_rgb(path), arr)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def test_a_truncated_jpeg_fails_even_when_pil_is_told_to_load_truncated_images(tmp_path):
    """PIL's own error (raised by the same PIL in this test) is what the loader reports; the global is restored."""
    full = tmp_path / 'full.jpg'
    Image.fromarray(rgb(16, 24, seed=5)).save(full, quality=90)
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(full.read_bytes()[:-60])
    with pytest.raises(OSError) as pil:
        with Image.open(cut) as img:
            img.load()
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        results = dict(img_path=str(cut))
        assert LoadImageRGB()(results) is None
        assert results['decode_error'] == f'OSError: {pil.value}'
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def test_missing_file_message_and_no_cache_of_failures(tmp_path):
    path = str(tmp_path / 'later.png')
    t = LoadImageRGB(cache_mb=1)
    results = dict(img_path=path)
    assert t(results) is None
    assert results['decode_error'] == f'FileNotFoundError: [Errno 2] No such file or directory: {path!r}'
    arr = rgb(4, 6, seed=6)
    png(tmp_path / 'later.png', arr)
    np.testing.assert_array_equal(t(dict(img_path=path))['img'], arr)


# ================================================================================ shapes, one-pixel sides
@pytest.mark.parametrize('h, w', [(1, 7), (7, 1), (1, 1), (5, 3)])
def test_one_pixel_wide_images_decode(tmp_path, h, w):
    arr = rgb(h, w, seed=h * 10 + w)
    out = LoadImageRGB()(dict(img_path=png(tmp_path / 'a.png', arr)))
    np.testing.assert_array_equal(out['img'], arr)
    assert out['img_shape'] == out['ori_shape'] == (h, w) and out['img'].flags['C_CONTIGUOUS']


# ============================================================================================ decode cache
def gray16(path, h: int, w: int, seed: int) -> tuple[str, np.ndarray]:
    """A 16-bit gray PNG and its expected RGB decode (``round(v * 255 / 65535)``). Its decode is a new, writable
    array (8-bit files decode to PIL's read-only buffer), so the cache's read-only flag shows."""
    v = np.random.default_rng(seed).integers(0, 65536, (h, w)).astype(np.uint16)
    Image.fromarray(v).save(path)
    want = np.rint(v.astype(np.float64) * 255 / 65535).astype(np.uint8)
    return str(path), np.repeat(want[..., None], 3, axis=2)


def test_default_loader_decodes_every_time(tmp_path):
    """No cache by default: a new, writable array per call, and a rewritten file is read again."""
    path, want = gray16(tmp_path / 'a.png', 4, 6, seed=7)
    t = LoadImageRGB()
    first = t(dict(img_path=path))['img']
    np.testing.assert_array_equal(first, want)
    assert first.flags['WRITEABLE']
    _, new = gray16(tmp_path / 'a.png', 4, 6, seed=8)
    second = t(dict(img_path=path))['img']
    assert second is not first
    np.testing.assert_array_equal(second, new)


def test_cache_holds_up_to_its_budget_exactly(tmp_path):
    """A budget of exactly two images' bytes: the first two are kept (the same read-only object comes back, even
    after the file changed: first come, never evicted), the third is decoded every time."""
    files = [gray16(tmp_path / f'{i}.png', 4, 6, seed=s) for i, s in enumerate((9, 10, 11))]
    t = LoadImageRGB(cache_mb=2 * 4 * 6 * 3 / 2**20)
    assert t.cache_bytes == 144
    got = [t(dict(img_path=p))['img'] for p, _ in files]
    for (_, want), g in zip(files, got):
        np.testing.assert_array_equal(g, want)
    assert not got[0].flags['WRITEABLE'] and not got[1].flags['WRITEABLE'] and got[2].flags['WRITEABLE']
    gray16(tmp_path / '0.png', 4, 6, seed=12)
    assert t(dict(img_path=files[0][0]))['img'] is got[0] and t(dict(img_path=files[1][0]))['img'] is got[1]
    again = t(dict(img_path=files[2][0]))['img']
    assert again is not got[2] and again.flags['WRITEABLE']
    np.testing.assert_array_equal(again, files[2][1])


def test_cache_budget_of_one_image(tmp_path):
    files = [gray16(tmp_path / f'{i}.png', 2, 5, seed=s) for i, s in enumerate((13, 14))]
    t = LoadImageRGB(cache_mb=2 * 5 * 3 / 2**20)
    assert t.cache_bytes == 30
    a0, a1 = (t(dict(img_path=p))['img'] for p, _ in files)
    assert t(dict(img_path=files[0][0]))['img'] is a0 and not a0.flags['WRITEABLE']
    assert t(dict(img_path=files[1][0]))['img'] is not a1 and a1.flags['WRITEABLE']


# ========================================================================================== pixel formats
def test_float_images_between_one_and_two_are_clipped_and_scaling_is_by_255(tmp_path):
    """Mode F: data within [0, 1] is scaled by 255 (0.6 -> 153, 0.1 -> 26 after rounding); a maximum of 1.5 is not
    [0, 1] data: clipped as is (1.5 -> 2, 0.6 -> 1)."""
    unit = Image.fromarray(np.array([[0.0, 0.1, 0.6, 1.0]], np.float32), mode='F')
    np.testing.assert_array_equal(pil_to_rgb_array(unit)[..., 0], [[0, 26, 153, 255]])
    above = Image.fromarray(np.array([[0.0, 0.6, 1.5]], np.float32), mode='F')
    np.testing.assert_array_equal(pil_to_rgb_array(above)[..., 0], [[0, 1, 2]])


def test_palette_png_files_against_pils_rgb(tmp_path):
    """Opaque palette file: PIL's own RGB lookup; the same palette with a transparent entry: that entry on white."""
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    p = Image.fromarray(idx, mode='P')
    p.putpalette([10, 20, 30, 200, 100, 0, 0, 255, 0])
    opaque = tmp_path / 'p.png'
    p.save(opaque)
    with Image.open(opaque) as ref:
        want = np.asarray(ref.convert('RGB'))
    np.testing.assert_array_equal(decode_image_rgb(str(opaque)), want)
    p.save(tmp_path / 't.png', transparency=1)
    want = want.copy()
    want[idx == 1] = 255
    np.testing.assert_array_equal(decode_image_rgb(str(tmp_path / 't.png')), want)


# ================================================================================================== draft
def test_draft_loader_checks_and_repr():
    for bad in (0, -3, True, 2.0, '8', None):
        with pytest.raises(ValueError) as err:
            LoadImageRGBDraft(min_size=bad)
        assert str(err.value) == ('min_size must be a positive int (the short side the pipeline resizes to), got '
                                  f'{bad!r}')
    t = LoadImageRGBDraft(min_size=1, cache_mb=0.5, max_pixels=7)
    assert (t.min_size, t.cache_bytes, t.max_pixels) == (1, 2**19, 7)
    assert repr(t) == 'LoadImageRGBDraft(min_size=1, cache_mb=0.5, max_pixels=7)'
    assert repr(LoadImageRGBDraft(min_size=3)) == 'LoadImageRGBDraft(min_size=3, cache_mb=0, max_pixels=89478485)'
    from transvae.datasets.transforms.resolution import resolution_keys
    assert resolution_keys(dict(type='LoadImageRGBDraft')) == ('min_size', )
    assert resolution_keys(dict(type='LoadImageRGB')) == ()
