"""Swin-VAE: window helpers, padded / shifted window attention against a brute-force reference, shapes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transvae.models.blocks import SwinBlock
from transvae.models.layers import window_and_shift
from transvae.registry import MODELS

WIDTHS, DEPTHS, LAT = [16, 32, 32, 64], [2, 2, 1, 2], 4


pytestmark = pytest.mark.usefixtures('one_thread')


def test_window_and_shift():
    assert window_and_shift((32, 32), 8, True) == ((8, 8), (4, 4))
    assert window_and_shift((32, 32), 8, False) == ((8, 8), (0, 0))
    # the window shrinks to the grid (and does not shift) along a small dimension, per dimension
    assert window_and_shift((4, 20), 8, True) == ((4, 8), (0, 4))
    assert window_and_shift((8, 8), 8, True) == ((8, 8), (0, 0))
    assert window_and_shift((1, 1), 8, True) == ((1, 1), (0, 0))


def reference_block(blk: SwinBlock, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Dense attention over the real tokens with an explicit "same shifted window" mask and the bias table."""
    b, n, c = x.shape
    h, w = hw
    (wh, ww), (sh, sw) = blk.window(hw)
    hp, wp = h + (-h) % wh, w + (-w) % ww
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    yr, xr = (ys - sh) % hp, (xs - sw) % wp  # coordinates in the cyclically shifted frame
    win = (yr // wh) * (wp // ww) + xr // ww

    def region(v, size, win_sz, s):  # Swin's three slices per dimension when shifted
        return torch.zeros_like(v) if not s else (v >= size - win_sz).long() + (v >= size - s).long()

    reg = region(yr, hp, wh, sh) * 3 + region(xr, wp, ww, sw)
    allowed = (win[:, None] == win[None, :]) & (reg[:, None] == reg[None, :])
    attn = blk.attn
    span = 2 * attn.window_size - 1
    ly, lx = yr % wh, xr % ww  # window-local coordinates
    idx = (ly[:, None] - ly[None, :] + attn.window_size - 1) * span + (lx[:, None] - lx[None, :] + attn.window_size - 1)
    bias = attn.relative_position_bias_table[idx].permute(2, 0, 1)  # (heads, N, N)
    mask = bias.masked_fill(~allowed, float('-inf'))[None]
    y = blk.norm1(x)
    q, k, v = attn.qkv(y).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, c)
    x = x + attn.proj(o)
    return x + blk.ffn(blk.norm2(x), hw)


@pytest.mark.parametrize('hw', [(16, 16), (12, 20), (5, 11), (4, 6), (9, 8)])
@pytest.mark.parametrize('shift', [False, True])
def test_swin_block_matches_dense_reference(hw, shift):
    """Padding to the window, masking the padding and the shifted regions, cropping back == dense masked attention."""
    torch.manual_seed(0)
    blk = MODELS.build(dict(type='SwinBlock', embed_dims=16, head_dim=8, window_size=8, shift=shift))
    x = torch.randn(2, hw[0] * hw[1], 16)
    torch.testing.assert_close(blk(x, hw), reference_block(blk, x, hw), atol=1e-5, rtol=1e-4)


def test_padding_does_not_leak():
    """Real tokens ignore the zero padding: a 12x12 grid equals the same grid cut out of a 16x16 map's windows."""
    torch.manual_seed(0)
    blk = MODELS.build(dict(type='SwinBlock', embed_dims=16, head_dim=8, window_size=8, shift=False))
    x = torch.randn(1, 12 * 12, 16)
    y = blk(x, (12, 12)).view(1, 12, 12, 16)
    # top-left window (rows/cols 0..7) sees only itself: run it alone as an 8x8 grid
    y_tl = blk(x.view(1, 12, 12, 16)[:, :8, :8].reshape(1, 64, 16), (8, 8)).view(1, 8, 8, 16)
    torch.testing.assert_close(y[:, :8, :8], y_tl, atol=1e-5, rtol=1e-4)


def swin(kind: str, **kw):
    cfg = dict(type=f'Swin{kind}', widths=WIDTHS, depths=DEPTHS, latent_channels=LAT, head_dim=8)
    cfg.update(kw)
    return MODELS.build(cfg)


@pytest.mark.parametrize('hw', [(16, 16), (64, 64), (48, 80), (160, 32)])
def test_encoder_shapes(hw):
    enc = swin('Encoder')
    assert enc.downsample_factor == 16
    y = enc(torch.randn(1, 3, *hw))
    assert y.shape == (1, 2 * LAT, hw[0] // 16, hw[1] // 16) and torch.isfinite(y).all()


@pytest.mark.parametrize('hw', [(1, 1), (3, 5), (4, 4), (10, 2)])
def test_decoder_shapes_and_grad(hw):
    dec = swin('Decoder')
    assert dec.upsample_factor == 16
    z = torch.randn(1, LAT, *hw, requires_grad=True)
    y = dec(z)
    assert y.shape == (1, 3, hw[0] * 16, hw[1] * 16)
    y.square().mean().backward()
    assert torch.isfinite(z.grad).all() and dec.get_last_layer().grad is not None


def test_shift_alternates_and_samplers():
    enc = swin('Encoder')
    assert [b.shift for b in enc.stages[0].blocks] == [False, True]
    merge = MODELS.build(dict(type='PatchMerging', in_channels=16, out_channels=32))
    assert merge(torch.randn(2, 16, 8, 12)).shape == (2, 32, 4, 6)
    assert merge.reduction.weight.shape == (32, 64)  # Linear 4C -> 2C
    expand = MODELS.build(dict(type='PatchExpanding', in_channels=32, out_channels=16))
    assert expand(torch.randn(2, 32, 4, 6)).shape == (2, 16, 8, 12)
    assert expand.expand.weight.shape == (64, 32)  # Linear C -> 2C


def test_rope_option():
    """Window-local 2D RoPE can replace (or complement) the bias table."""
    enc = swin('Encoder', pe_cfg=dict(type='RoPE2D'),
               block_cfg=dict(type='SwinBlock', attn_cfg=dict(type='WindowAttention', rel_pos_bias=False)))
    assert enc.stages[0].blocks[0].attn.relative_position_bias_table is None
    assert enc(torch.randn(1, 3, 48, 32)).shape == (1, 2 * LAT, 3, 2)
