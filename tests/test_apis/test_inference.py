"""transvae.apis: init_model round trip, input conversion, reconstruct == model.reconstruct untiled."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.runner import save_checkpoint
from PIL import Image

from transvae.apis import decode, encode, init_model, reconstruct, to_image_tensor


def test_init_model_round_trip(tiny_config, tmp_path):
    torch.manual_seed(1)
    m1 = init_model(tiny_config)
    assert not m1.training
    with torch.no_grad():
        m1.latent_std.fill_(2.0)  # a buffer travels with the checkpoint too
    ckpt = str(tmp_path / 'tiny.pth')
    save_checkpoint({'state_dict': m1.state_dict(), 'meta': {'note': 'test'}}, ckpt)
    torch.manual_seed(2)
    m2 = init_model(tiny_config, ckpt, cfg_options=None)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    x = torch.rand(1, 3, 24, 40)
    assert torch.equal(reconstruct(m1, x), reconstruct(m2, x))
    m3 = init_model(tiny_config)  # fresh random weights differ
    assert not all(torch.equal(s1[k], v) for k, v in m3.state_dict().items())


def test_init_model_cfg_options(tiny_config):
    m = init_model(tiny_config, cfg_options={'model.arch.latent_channels': 8})
    assert m.latent_channels == 8


@pytest.mark.parametrize('size', [(37, 53), (8, 8), (19, 64)])
def test_reconstruct_odd_sizes_equals_model(tiny_vae, size):
    x = torch.rand(2, 3, *size)
    out = reconstruct(tiny_vae, x)
    with torch.no_grad():
        ref = ((tiny_vae.reconstruct(x * 2 - 1) + 1) / 2).clamp(0, 1)
    assert out.shape == x.shape
    assert torch.equal(out, ref)
    assert out.min() >= 0 and out.max() <= 1


def test_input_kinds_agree(tiny_vae):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, size=(21, 30, 3), dtype=np.uint8)
    t_float = torch.from_numpy(hwc).permute(2, 0, 1).float() / 255
    outs = [reconstruct(tiny_vae, v) for v in (hwc, Image.fromarray(hwc), t_float,
                                               torch.from_numpy(hwc).permute(2, 0, 1).contiguous(),
                                               hwc.astype(np.float32) / 255)]
    for o in outs:
        assert o.shape == (3, 21, 30)
        torch.testing.assert_close(o, outs[0], atol=1e-5, rtol=0)
    batch = reconstruct(tiny_vae, [hwc, hwc])
    assert batch.shape == (2, 3, 21, 30)
    torch.testing.assert_close(batch[1], outs[0], atol=1e-5, rtol=0)
    gray, single = to_image_tensor(hwc[..., 0])
    assert gray.shape == (1, 3, 21, 30) and single
    with pytest.raises(ValueError):
        to_image_tensor([hwc, hwc[:10]])
    with pytest.raises(TypeError):
        to_image_tensor(torch.zeros(3, 4, 4, dtype=torch.int32))


def test_encode_decode_api(tiny_vae):
    x = torch.rand(1, 3, 37, 53)
    post = encode(tiny_vae, x)
    assert post.mean.shape == (1, 4, 5, 7)
    img = decode(tiny_vae, post.mode(), out_size=(37, 53))
    assert img.shape == (1, 3, 37, 53)
    torch.testing.assert_close(img, reconstruct(tiny_vae, x))
    single = decode(tiny_vae, post.mode()[0])
    assert single.shape == (3, 40, 56)


def test_tiled_reconstruct_api_shapes(tiny_vae):
    x = torch.rand(1, 3, 70, 90)
    out = reconstruct(tiny_vae, x, tile=32, overlap=8)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError):
        reconstruct(tiny_vae, x, tile='big')
    # a tile covering the whole (padded) image is the untiled result
    torch.testing.assert_close(reconstruct(tiny_vae, x, tile=96), reconstruct(tiny_vae, x), atol=0, rtol=0)
