"""Every registered class of each layer slot honours the slot's contract (DESIGN.md §3): FFN, position encoding,
attention, down / up sampler, norm, patch embed, output head. The lists come from the registry."""
from __future__ import annotations

import pytest
import torch

from slot_registry import accepts, registered
from transvae.models.layers import MultiHeadSelfAttention, WindowAttention, build_norm, build_position_encoding
from transvae.models.layers.sampling import build_sampler
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

FFNS = registered('transvae.models.layers.ffn')
PES = registered('transvae.models.layers.position')
ATTNS = registered('transvae.models.layers.attention') + registered('transvae.models.layers.window_attention')
SAMPLERS = registered('transvae.models.layers.sampling')
NORMS = registered('transvae.models.layers.norm')
PATCH = registered('transvae.models.layers.patch_embed')


def test_slots_are_found():
    assert {'PointwiseFFN', 'DWConvFFN', 'FullConvFFN'} <= set(FFNS)
    assert {'NoPE', 'RoPE2D', 'LearnableAPE', 'SinCosAPE'} <= set(PES)
    assert {'DCDownsample', 'DCUpsample', 'PatchMerging', 'PatchExpanding'} <= set(SAMPLERS)


@pytest.mark.parametrize('name', FFNS)
def test_ffn_contract(name):
    torch.manual_seed(0)
    ffn = MODELS.build(dict(type=name), default_args=dict(embed_dims=32))
    x = torch.randn(2, 6 * 5, 32, requires_grad=True)
    y = ffn(x, (6, 5))
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None for p in ffn.parameters()) and x.grad.abs().sum() > 0


@pytest.mark.parametrize('name', PES)
def test_position_encoding_contract(name):
    """Tokens keep their shape; the q / k transform (if any) keeps shapes, works on any grid, is not persistent
    state, and is used by every attention layer through one interface."""
    torch.manual_seed(0)
    pe = build_position_encoding(dict(type=name), head_dim=16, embed_dims=32)
    assert not any(k for k in pe.state_dict() if k.endswith(('freqs', 'cache')))  # buffers are non-persistent
    for hw in [(6, 5), (9, 7)]:
        t = torch.randn(2, hw[0] * hw[1], 32)
        assert pe.embed_tokens(t, hw).shape == t.shape
        pos = pe.qk_transform(hw)
        if pos is not None:
            q, k = torch.randn(2, 2, hw[0] * hw[1], 16), torch.randn(2, 2, hw[0] * hw[1], 16)
            q2, k2 = pos(q, k)
            assert q2.shape == q.shape and k2.shape == k.shape and q2.dtype == q.dtype
        attn = MultiHeadSelfAttention(32, head_dim=16)
        assert attn(t, hw, pos).shape == t.shape
    win = WindowAttention(32, head_dim=16, window_size=4)
    tw = torch.randn(3, 16, 32)
    assert win(tw, (4, 4), pe.qk_transform((4, 4))).shape == tw.shape


@pytest.mark.parametrize('name', ATTNS)
def test_attention_contract(name):
    kw = dict(window_size=4) if accepts(name, 'window_size') else {}
    attn = MODELS.build(dict(type=name, qk_norm_cfg=dict(type='RMSNorm')),
                        default_args=dict(embed_dims=32, head_dim=16, **kw))
    hw = (4, 4) if kw else (6, 5)
    x = torch.randn(2, hw[0] * hw[1], 32, requires_grad=True)
    y = attn(x, hw, build_position_encoding(dict(type='RoPE2D'), 16, 32).qk_transform(hw))
    assert y.shape == x.shape
    y.sum().backward()
    assert all(p.grad is not None for p in attn.parameters())


@pytest.mark.parametrize('name', SAMPLERS)
def test_sampler_contract(name):
    s = build_sampler(dict(type=name), 16, 32)
    x = torch.randn(1, 16, 6, 8)
    y = s(x)
    assert y.shape[1] == 32 and tuple(y.shape[-2:]) in [(3, 4), (12, 16)], (name, y.shape)


@pytest.mark.parametrize('name', NORMS)
def test_norm_contract(name):
    norm = build_norm(dict(type=name), 16)
    x = torch.randn(2, 16, 5, 6) if name.endswith('2d') or name == 'GN' else torch.randn(2, 30, 16)
    assert norm(x).shape == x.shape


@pytest.mark.parametrize('name', PATCH)
def test_patch_embed_and_head_contract(name):
    if 'Head' in name:
        m = MODELS.build(dict(type=name), default_args=dict(in_channels=32, out_channels=3, patch_size=4))
        assert m(torch.randn(1, 32, 3, 5)).shape == (1, 3, 12, 20)
    else:
        m = MODELS.build(dict(type=name), default_args=dict(in_channels=3, embed_dims=32, patch_size=4))
        assert m(torch.randn(1, 3, 12, 20)).shape == (1, 32, 3, 5)
