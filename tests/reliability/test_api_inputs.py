"""Issue 20, item 9: one input contract for ``transvae.apis`` (encode / decode / reconstruct, every input kind).

Real PNG files on disk for the alpha cases; the drill's cases (``fault_drill.inputs.api_contract_cases``) are run
one by one as the CI subset of ``drill_api_contract``.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from projects.fault_drill.fault_drill.inputs import API_MODEL, api_contract_cases
from transvae.apis import decode, encode, reconstruct, to_image_tensor
from transvae.registry import MODELS


@pytest.fixture(scope='module')
def model(one_thread):
    torch.manual_seed(0)
    return MODELS.build(API_MODEL).eval()


def _rgba(seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).integers(0, 256, (10, 14, 4), dtype=np.uint8)
    a[0, 0, 3], a[0, 1, 3] = 0, 255
    return a


# -- float ranges -----------------------------------------------------------------------------------------------------
def test_float_0_255_tensor_is_refused_with_the_fix(model):
    x = torch.randint(0, 256, (3, 16, 16)).float()  # the case: was reconstructed as garbage
    with pytest.raises(ValueError, match=r'0\.\.255 data\? For 0\.\.255 data divide by 255.*uint8'):
        reconstruct(model, x)
    with pytest.raises(ValueError, match='divide by 255'):
        encode(model, x.permute(1, 2, 0).numpy())  # the same as a float numpy array
    out = reconstruct(model, x.to(torch.uint8))  # as uint8 it is fine
    assert out.shape == (3, 16, 16) and bool(out.isfinite().all())


def test_float_minus1_1_and_overshoot_are_refused(model):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r'\[-1, 1\] data .*\(x \+ 1\) / 2'):
        reconstruct(model, x * 2 - 1)
    with pytest.raises(ValueError, match=r'overshoots .*clamp\(0, 1\)'):
        reconstruct(model, x * 1.2)


def test_rounding_within_the_tolerance_is_accepted_and_clamped():
    x = torch.rand(3, 8, 8)
    x[0, 0, 0], x[0, 0, 1] = 1 + 5e-4, -5e-4
    t, single = to_image_tensor(x)
    assert single and float(t.max()) <= 1 and float(t.min()) >= 0
    bf = (torch.rand(3, 8, 8) * 0.5 + 0.5).to(torch.bfloat16)
    bf[0, 0, 0] = 1.0078125  # one bfloat16 ulp above 1: rounding, not 0..255 data
    assert float(to_image_tensor(bf)[0].max()) == 1.0


def test_integer_dtypes_other_than_uint8_uint16_are_refused():
    with pytest.raises(TypeError, match='uint8'):
        to_image_tensor(np.zeros((8, 8, 3), np.int64))
    with pytest.raises(TypeError, match='uint8'):
        to_image_tensor(np.zeros((8, 8, 3), bool))
    x16 = np.full((8, 8, 3), 65535, np.uint16)
    assert torch.equal(to_image_tensor(x16)[0], torch.ones(1, 3, 8, 8))
    assert torch.equal(to_image_tensor(torch.from_numpy(x16).permute(2, 0, 1))[0], torch.ones(1, 3, 8, 8))


def test_layout_mistakes_name_the_fix():
    with pytest.raises(ValueError, match=r'permute\(2, 0, 1\)'):
        to_image_tensor(torch.rand(16, 16, 3))
    with pytest.raises(ValueError, match=r'transpose\(1, 2, 0\)'):
        to_image_tensor(np.zeros((3, 16, 16), np.uint8))


# -- alpha: arrays, tensors, PIL and files agree --------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['RGBA', 'LA'])
def test_alpha_array_equals_the_same_image_from_a_file(model, tmp_path, mode):
    a = _rgba()
    if mode == 'LA':
        a = a[..., [0, 3]].copy()
    path = str(tmp_path / f'{mode}.png')
    Image.fromarray(a, mode).save(path)
    from_file = to_image_tensor(path)[0]
    assert float(from_file[0, :, 0, 0].min()) == 1.0  # the transparent pixel is white
    for value in (a, torch.from_numpy(a).permute(2, 0, 1), Image.fromarray(a, mode), [a]):
        assert torch.equal(to_image_tensor(value)[0], from_file)  # was: alpha dropped for arrays
    assert torch.equal(reconstruct(model, a), reconstruct(model, path))
    as_float = to_image_tensor(a.astype(np.float32) / 255)[0]  # float alpha: the same formula, no 1/255 rounding
    assert float((as_float - from_file).abs().max()) <= 1 / 255 + 1e-6


def test_gray_tensor_and_array_agree():
    g = np.random.default_rng(0).integers(0, 256, (9, 11), dtype=np.uint8)
    ref = to_image_tensor(g)[0]
    assert ref.shape == (1, 3, 9, 11)
    assert torch.equal(to_image_tensor(torch.from_numpy(g))[0], ref)
    assert torch.equal(to_image_tensor(torch.from_numpy(g)[None])[0], ref)


# -- latents ----------------------------------------------------------------------------------------------------------
def test_nan_and_inf_latents_are_refused_in_decode(model):
    z = encode(model, torch.rand(1, 3, 16, 16)).mode()
    for bad, word in ((z.clone().fill_(float('nan')), 'NaN'), (z / 0, 'Inf')):
        with pytest.raises(ValueError, match=word):
            decode(model, bad)  # was: a NaN image
        with pytest.raises(ValueError, match=word):
            decode(model, bad[0])
    assert decode(model, z).shape == (1, 3, 16, 16)


def test_latents_checked_against_the_model(model):
    with pytest.raises(ValueError, match=r'8 channels.*decodes 4'):
        decode(model, torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match=r'\(B, d, h, w\)'):
        decode(model, torch.randn(4, 4))
    with pytest.raises(TypeError, match='floating point'):
        decode(model, torch.zeros(1, 4, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r'\.mode\(\)'):
        decode(model, encode(model, torch.rand(3, 16, 16)))
    with pytest.raises(ValueError, match='out_size'):
        decode(model, torch.randn(1, 4, 4, 4), out_size=(17, 16))
    out = decode(model, np.random.default_rng(0).standard_normal((4, 4, 4)).astype(np.float32), out_size=(13, 16))
    assert out.shape == (3, 13, 16)


def test_non_finite_weights_are_refused_not_returned_as_nan(model):
    import copy
    bad = copy.deepcopy(model)
    with torch.no_grad():
        next(bad.encoder.parameters()).fill_(float('inf'))
    with pytest.raises(ValueError, match="encoder's outputs"):
        reconstruct(bad, torch.rand(3, 16, 16))


# -- the drill's cases, one by one ------------------------------------------------------------------------------------
def test_drill_api_contract_cases_all_survive(model, tmp_path):
    cases = api_contract_cases(str(tmp_path), random.Random(0))
    lost = [name for name, check in cases if not check(model)]
    assert not lost, f'lost: {lost}'
