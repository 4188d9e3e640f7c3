"""Issue 20, item 10: images too large to decode (decompression bombs) are refused from the header.

Real PNG files declaring 12000 x 12000 and 20000 x 20000 pixels (17 KB and 47 KB on disk, written as a stream of
zero rows by ``fault_drill.inputs.write_blank_png``). Decoded with the limit off, the 12000² one alone takes +1.4 GB
of peak RSS and 6-10 s on the shared 2-core machine (``drill_image_bombs`` measures it); the 20000² one is above
twice PIL's default global limit, so PIL's own ``DecompressionBombError`` path is covered too.
"""
from __future__ import annotations

import os.path as osp
import time

import numpy as np
import pytest
import torch
from PIL import Image

from projects.fault_drill.fault_drill.inputs import make_bomb_folder, probe_reconstruct, write_blank_png
from transvae.apis import reconstruct, to_image_tensor
from transvae.datasets import ImageFolderDataset
from transvae.datasets.transforms import DEFAULT_MAX_PIXELS, ImageTooLargeError, LoadImageRGB, decode_image_rgb

PIPE = [dict(type='LoadImageRGB'), dict(type='PackVAEInputs')]


@pytest.fixture(scope='module')
def bombs(tmp_path_factory) -> dict:
    """A flat folder: 6 good 24² PNGs, a 12000² and a 20000² 1-bit PNG (made once per module)."""
    return make_bomb_folder(str(tmp_path_factory.mktemp('bombs') / 'imgs'))


def test_blank_png_writer_makes_valid_files(tmp_path):
    write_blank_png(str(tmp_path / 'g.png'), 13, 7)
    write_blank_png(str(tmp_path / 'c.png'), 5, 9, rgb=True)
    assert decode_image_rgb(str(tmp_path / 'g.png')).shape == (7, 13, 3)
    a = decode_image_rgb(str(tmp_path / 'c.png'))
    assert a.shape == (9, 5, 3) and not a.any()


def test_dataset_skips_and_counts_bombs_before_decoding(bombs):
    saved = Image.MAX_IMAGE_PIXELS
    ds = ImageFolderDataset(osp.dirname(bombs['good'][0]), pipeline=PIPE, test_mode=True, layout='flat')
    t0 = time.time()
    out = [ds[i] for i in range(len(ds))]
    took = time.time() - t0
    loaded = sorted(ds.get_data_info(i)['img_path'] for i, o in enumerate(out) if o is not None)
    assert loaded == sorted(bombs['good'])  # the good ones load
    assert ds.num_skipped == len(bombs['bombs']) == 2  # each bomb skipped and counted, as corrupt files are
    assert took < 5, f'{took:.1f} s: the bombs were decoded'
    assert Image.MAX_IMAGE_PIXELS == saved  # PIL's process-wide setting is read, never changed


def test_train_mode_replaces_bombs_with_good_images(bombs):
    ds = ImageFolderDataset(osp.dirname(bombs['good'][0]), pipeline=PIPE, layout='flat')
    shapes = {tuple(ds[i]['inputs'].shape) for i in range(len(ds))}  # a bomb's index gives a good image instead
    assert shapes == {(3, 24, 24)}
    assert ds.num_skipped == 2


def test_the_guard_does_not_rely_on_pils_global(bombs, monkeypatch):
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', None)  # a user (or library) switched PIL's check off
    results = LoadImageRGB()(dict(img_path=bombs['bombs'][0]))
    assert results is None
    r = dict(img_path=bombs['bombs'][0])
    LoadImageRGB().transform(r)
    assert 'ImageTooLargeError' in r['decode_error'] and f'{DEFAULT_MAX_PIXELS:,}' in r['decode_error']
    assert 'LoadImageRGB(max_pixels=...)' in r['decode_error']  # how to raise it
    with pytest.raises(ImageTooLargeError, match='12000x12000'):
        to_image_tensor(Image.open(bombs['bombs'][0]))  # a lazily opened PIL image


def test_the_limit_is_configurable(bombs):
    small = bombs['good'][0]  # 24 x 24 = 576 pixels
    assert LoadImageRGB(max_pixels=575)(dict(img_path=small)) is None
    assert LoadImageRGB(max_pixels=576)(dict(img_path=small))['img'].shape == (24, 24, 3)
    with pytest.raises(ValueError, match='max_pixels'):
        LoadImageRGB(max_pixels=0)
    with pytest.raises(ImageTooLargeError, match=r'576 pixels.*max_pixels=N in transvae\.apis'):
        to_image_tensor(small, max_pixels=100)
    assert to_image_tensor(small, max_pixels=None)[0].shape == (1, 3, 24, 24)
    # above twice PIL's global limit PIL refuses too: the message says which setting to raise
    r = dict(img_path=bombs['bombs'][1])
    LoadImageRGB(max_pixels=None).transform(r)
    assert 'PIL.Image.MAX_IMAGE_PIXELS' in r['decode_error']


def test_api_refuses_bombs_fast_without_allocating(bombs):
    res = probe_reconstruct(bombs['bombs'])  # a fresh process: peak RSS over a warmed-up model
    for r in res:
        assert not r['ok'] and r['error'] == 'ImageTooLargeError', r
        assert f'{DEFAULT_MAX_PIXELS:,}' in r['message'] and 'max_pixels=' in r['message'], r['message']
        assert r['peak_growth_mb'] < 64, r  # decoding the 12000² file costs ~580 MB
        assert r['seconds'] < 5, r


def test_api_refusal_is_a_value_error_in_process(bombs):
    with pytest.raises(ValueError, match=r'image too large to decode: .*bomb_12000\.png.* 12000x12000'):
        reconstruct(torch.nn.Linear(1, 1), bombs['bombs'][0])  # refused before the model is touched
    assert to_image_tensor(np.zeros((4, 4, 3), np.uint8))[0].shape == (1, 3, 4, 4)
