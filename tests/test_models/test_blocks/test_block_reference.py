"""Every registered block by value (issue 23): its output against a composition written out by hand: the
pre-norm residual order of the Transformer blocks (``x + Attn(N1(x))``, then ``+ FFN(N2(.))``), the LDM ResBlock
order (GN -> SiLU -> conv, twice, plus a 1x1 skip when the width changes), LDM's single-head attention with scale
``1/sqrt(C)``, Swin's shifted / padded windows as a dense masked attention; and the stages that chain them (one
position encoding per stage, evaluated on the token grid or the window). Non-square maps, C_in != C_out, non-default
norms. The layers inside are pinned by value in ``tests/test_models/test_layers/``."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slot_registry import registered
from transvae.models.blocks import ConvStage, TransformerStage
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

BLOCKS = sorted(set(registered('transvae.models.blocks.attn_block') + registered('transvae.models.blocks.resblock')
                    + registered('transvae.models.blocks.transformer_block')
                    + registered('transvae.models.blocks.swin_block')))
ATOL, RTOL = 2e-5, 1e-4


def randomise(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and name.endswith('weight'):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return module


def d(t: Tensor) -> Tensor:
    return t.detach().double()


def hand_gn(x: Tensor, gn: nn.GroupNorm) -> Tensor:
    b, c = x.shape[:2]
    xg = x.reshape(b, gn.num_groups, -1)
    mu = xg.mean(-1, keepdim=True)
    y = ((xg - mu) / torch.sqrt((xg - mu).pow(2).mean(-1, keepdim=True) + gn.eps)).reshape(x.shape)
    return y * d(gn.weight).view(1, c, 1, 1) + d(gn.bias).view(1, c, 1, 1)


def hand_ln(x: Tensor, ln: nn.Module) -> Tensor:
    mu = x.mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt((x - mu).pow(2).mean(-1, keepdim=True) + ln.eps)
    return y * d(ln.weight) + d(ln.bias)


def conv(x: Tensor, m: nn.Conv2d) -> Tensor:
    return F.conv2d(x, d(m.weight), d(m.bias), m.stride, m.padding)


def silu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def as_double(module: nn.Module) -> nn.Module:
    """A float64 copy, so a composition of the block's own submodules is an exact reference."""
    import copy
    return copy.deepcopy(module).double()


# ----------------------------------------------------------------------------------------------- references
def _ref_resblock(blk, x, hw=None):
    h = conv(silu(hand_gn(x, blk.norm1)), blk.conv1)
    h = conv(silu(hand_gn(h, blk.norm2)), blk.conv2)
    return h + (x if isinstance(blk.skip, nn.Identity) else conv(x, blk.skip))


def _ref_attnblock(blk, x, hw=None):
    b, c, h, w = x.shape
    y = hand_gn(x, blk.norm)
    q, k, v = (conv(y, m).reshape(b, c, h * w) for m in (blk.q, blk.k, blk.v))  # (B, C, N)
    s = torch.einsum('bci,bcj->bij', q, k) / math.sqrt(c)
    a = torch.softmax(s, dim=-1)
    out = torch.einsum('bij,bcj->bci', a, v).reshape(b, c, h, w)
    return x + conv(out, blk.proj_out)


def _ref_transformer_block(blk, x, hw, pos=None):
    """Pre-norm: ``y = x + Attn(LN1(x))``, ``y + FFN(LN2(y))`` with the block's own (float64) attention / FFN."""
    dbl = as_double(blk)
    y = x + dbl.attn(hand_ln(x, blk.norm1), hw, pos)
    return y + dbl.ffn(hand_ln(y, blk.norm2), hw)


def _ref_swin(blk, x, hw, pos=None):
    """Dense attention over the real tokens: token i sees j iff both fall into the same window of the cyclically
    shifted, zero-padded grid and into the same one of Swin's shift regions; bias from the table by the window-local
    offset; then the FFN residual."""
    assert pos is None
    dbl = as_double(blk)
    attn = dbl.attn
    b, n, c = x.shape
    h, w = hw
    (wh, ww), (sh, sw) = blk.window(hw)
    hp, wp = h + (-h) % wh, w + (-w) % ww
    idx = torch.arange(n)
    yr, xr = (idx // w - sh) % hp, (idx % w - sw) % wp
    win = (yr // wh) * (wp // ww) + xr // ww

    def region(v, size, win_sz, s):
        return torch.zeros_like(v) if not s else (v >= size - win_sz).long() + (v >= size - s).long()

    reg = region(yr, hp, wh, sh) * 3 + region(xr, wp, ww, sw)
    allowed = (win[:, None] == win[None, :]) & (reg[:, None] == reg[None, :])
    ly, lx = yr % wh, xr % ww
    span = 2 * attn.window_size - 1
    tbl = (ly[:, None] - ly[None, :] + attn.window_size - 1) * span + lx[:, None] - lx[None, :] + attn.window_size - 1
    bias = attn.relative_position_bias_table[tbl].permute(2, 0, 1)  # (heads, N, N)
    qkv = attn.qkv(hand_ln(x, blk.norm1)).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    s = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim) + bias
    s = s.masked_fill(~allowed, float('-inf'))
    o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, n, c)
    y = x + attn.proj(o)
    return y + dbl.ffn(hand_ln(y, blk.norm2), hw)


BLOCK_REFERENCES = {'ResBlock': _ref_resblock, 'AttnBlock': _ref_attnblock, 'TransVAEBlock': _ref_transformer_block,
                    'ViTBlock': _ref_transformer_block, 'SwinBlock': _ref_swin}


def _build(name: str) -> tuple[nn.Module, Tensor, tuple[int, int] | None]:
    g = torch.Generator().manual_seed(21)
    if name == 'ResBlock':
        blk = MODELS.build(dict(type=name, in_channels=8, out_channels=12, norm_cfg=dict(type='GN', num_groups=4)))
        return blk, torch.randn(2, 8, 3, 5, generator=g), None
    if name == 'AttnBlock':
        blk = MODELS.build(dict(type=name, in_channels=12, norm_cfg=dict(type='GN', num_groups=3)))
        return blk, torch.randn(2, 12, 3, 5, generator=g), None
    if name == 'SwinBlock':
        blk = MODELS.build(dict(type=name, embed_dims=16, head_dim=8, window_size=4, shift=True))
        return blk, torch.randn(2, 5 * 7, 16, generator=g), (5, 7)
    blk = MODELS.build(dict(type=name, norm_cfg=dict(type='LN', eps=1e-3)), default_args=dict(embed_dims=16,
                                                                                           head_dim=8))
    return blk, torch.randn(2, 15, 16, generator=g), (3, 5)


@pytest.mark.parametrize('name', BLOCKS)
def test_every_block_matches_its_reference(name):
    if name not in BLOCK_REFERENCES:
        cls = MODELS.get(name)
        if cls.__module__.startswith('transvae.'):
            pytest.fail(f'{name} ({cls.__module__}) has no value reference in BLOCK_REFERENCES')
        pytest.skip(f'{name} is a variant from {cls.__module__}')
    blk, x, hw = _build(name)
    randomise(blk, 22)
    out = blk(x) if hw is None else blk(x, hw)
    ref = BLOCK_REFERENCES[name](blk, x.double(), hw) if hw is not None else BLOCK_REFERENCES[name](blk, x.double())
    torch.testing.assert_close(out.double(), ref, atol=ATOL, rtol=RTOL)


def test_resblock_same_width_has_an_identity_skip():
    blk = randomise(MODELS.build(dict(type='ResBlock', in_channels=8, norm_cfg=dict(type='GN', num_groups=2))), 23)
    assert isinstance(blk.skip, nn.Identity)
    x = torch.randn(1, 8, 4, 6, generator=torch.Generator().manual_seed(24))
    torch.testing.assert_close(blk(x).double(), _ref_resblock(blk, x.double()), atol=ATOL, rtol=RTOL)


def test_transformer_block_defaults():
    """TransVAE block: RMSNorm on Q/K, FullConv FFN ratio 1; ViT block: no Q/K norm, point-wise FFN ratio 4."""
    t = MODELS.build(dict(type='TransVAEBlock', embed_dims=16, head_dim=8))
    assert type(t.attn.q_norm).__name__ == 'RMSNorm' and type(t.ffn).__name__ == 'FullConvFFN'
    assert t.ffn.fc1.out_features == 16
    v = MODELS.build(dict(type='ViTBlock', embed_dims=16, head_dim=8))
    assert isinstance(v.attn.q_norm, nn.Identity) and type(v.ffn).__name__ == 'PointwiseFFN'
    assert v.ffn.fc1.out_features == 64
    assert type(t.norm1).__name__ == 'LayerNorm' and t.norm1.eps == 1e-6


def test_transformer_block_with_position_transform():
    from transvae.models.layers import RoPE2D
    blk = randomise(MODELS.build(dict(type='TransVAEBlock', embed_dims=16, head_dim=8)), 25)
    x = torch.randn(2, 15, 16, generator=torch.Generator().manual_seed(26))
    pos = RoPE2D(head_dim=8, theta=30.0).qk_transform((3, 5))
    torch.testing.assert_close(blk(x, (3, 5), pos).double(), _ref_transformer_block(blk, x.double(), (3, 5), pos),
                               atol=ATOL, rtol=RTOL)


# ----------------------------------------------------------------------------------------------- stages
@pytest.mark.parametrize('pe', ['SinCosAPE', 'RoPE2D'])
def test_transformer_stage_is_the_chain_of_its_blocks(pe):
    """Map -> tokens (row-major) -> absolute encoding -> blocks, each with the same q / k transform of the token
    grid -> map, on a 3x5 map."""
    stage = randomise(TransformerStage(16, 2, dict(type='TransVAEBlock'), dict(type=pe, theta=30.0), head_dim=8), 27)
    x = torch.randn(2, 16, 3, 5, generator=torch.Generator().manual_seed(28))
    t = x.flatten(2).transpose(1, 2)
    t = stage.pe.embed_tokens(t, (3, 5))
    pos = stage.pe.qk_transform((3, 5))
    for blk in stage.blocks:
        t = blk(t, (3, 5), pos)
    torch.testing.assert_close(stage(x), t.transpose(1, 2).reshape(2, 16, 3, 5), atol=1e-6, rtol=1e-5)


def test_window_stage_alternates_shift_and_uses_the_window_grid():
    stage = TransformerStage(16, 3, dict(type='SwinBlock'), None, head_dim=8, window_size=4)
    assert [b.shift for b in stage.blocks] == [False, True, False]
    assert stage.pe_grid((10, 3)) == (4, 3)
    randomise(stage, 29)
    x = torch.randn(1, 16, 5, 7, generator=torch.Generator().manual_seed(30))
    t = x.flatten(2).transpose(1, 2).double()
    for blk in stage.blocks:
        t = _ref_swin(blk, t, (5, 7))
    torch.testing.assert_close(stage(x).double(), t.transpose(1, 2).reshape(1, 16, 5, 7), atol=ATOL, rtol=RTOL)


def test_conv_stage_chains_resblocks():
    stage = randomise(ConvStage(8, 2, dict(type='ResBlock', norm_cfg=dict(type='GN', num_groups=2))), 31)
    x = torch.randn(1, 8, 3, 5, generator=torch.Generator().manual_seed(32))
    ref = x.double()
    for blk in stage.blocks:
        ref = _ref_resblock(blk, ref)
    torch.testing.assert_close(stage(x).double(), ref, atol=ATOL, rtol=RTOL)
