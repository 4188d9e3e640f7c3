"""Every registered class of each layer slot honours the slot's contract (DESIGN.md §3): FFN, position encoding,
attention, down / up sampler, norm, patch embed, output head. A slot is its base class: the lists are the registered
subclasses of it, wherever they are defined (the user package ``projects/example_variant`` included)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

from slot_registry import accepts, variants
from transvae.models import layers
from transvae.models.layers import (FFN, Attention, Downsampler, MultiHeadSelfAttention, Norm, OutputHead, PatchEmbed,
                                    PositionEncoding, Upsampler, WindowAttention, build_norm, build_position_encoding)
from transvae.models.layers.sampling import build_sampler
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

SLOTS = (FFN, PositionEncoding, Attention, Downsampler, Upsampler, Norm, PatchEmbed, OutputHead)
FFNS = variants(FFN)
PES = variants(PositionEncoding)
ATTNS = variants(Attention)
DOWNS = variants(Downsampler)
UPS = variants(Upsampler)
NORMS = variants(Norm)
EMBEDS = variants(PatchEmbed)
HEADS = variants(OutputHead)


def test_slots_are_found():
    assert {'PointwiseFFN', 'DWConvFFN', 'FullConvFFN', 'SwiGLUFFN', 'ReLU2FFN'} <= set(FFNS)
    assert {'NoPE', 'RoPE2D', 'LearnableAPE', 'SinCosAPE', 'MixedRoPE2D'} <= set(PES)
    assert {'MultiHeadSelfAttention', 'WindowAttention'} <= set(ATTNS)
    assert {'DCDownsample', 'PatchMerging', 'StridedConvDown'} <= set(DOWNS)
    assert {'DCUpsample', 'PatchExpanding', 'InterpConvUp'} <= set(UPS)
    assert {'LN', 'RMSNorm', 'GN', 'LN2d', 'RMSNorm2d'} <= set(NORMS)
    assert {'ConvPatchEmbed', 'SeqConvPatchEmbed'} <= set(EMBEDS)
    assert {'PixelShuffleHead', 'SeqConvUpHead'} <= set(HEADS)
    assert MODELS.get('ReLU2FFN').__module__ == 'example_variant.relu2_ffn'  # a user's variant, checked below too


def test_every_layer_class_is_in_a_slot():
    """A class defined in ``transvae/models/layers`` and registered derives from its slot's base class (only torch's
    activations, registered by name, are in no slot)."""
    for info in pkgutil.iter_modules(layers.__path__):
        module = importlib.import_module(f'{layers.__name__}.{info.name}')
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and cls in MODELS.module_dict.values():
                assert issubclass(cls, SLOTS), f'{module.__name__}.{name} is registered but derives from no slot base'


@pytest.mark.parametrize('base', SLOTS, ids=lambda b: b.__name__)
def test_slot_base_is_abstract(base):
    """A slot base states the contract only: it cannot be built, and its forward has the slot's signature."""
    if base is PositionEncoding:  # the identity encoding: concrete by design (no embedding, no q / k transform)
        return
    assert inspect.isabstract(base)
    for name in variants(base):
        assert not inspect.isabstract(MODELS.get(name))


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
    params = {n for n, _ in pe.named_parameters()}
    assert all(k in params for k in pe.state_dict())  # buffers are non-persistent (learnable frequencies may be saved)
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


@pytest.mark.parametrize('name', DOWNS + UPS)
def test_sampler_contract(name):
    s = build_sampler(dict(type=name), 16, 32)
    assert (s.in_channels, s.out_channels) == (16, 32)
    x = torch.randn(1, 16, 6, 8)
    want = (3, 4) if name in DOWNS else (12, 16)
    assert s(x).shape == (1, 32, *want), name


@pytest.mark.parametrize('name', NORMS)
def test_norm_contract(name):
    norm = build_norm(dict(type=name), 16)
    x = torch.randn(2, 16, 5, 6) if norm.channel_dim == 1 else torch.randn(2, 30, 16)
    assert norm(x).shape == x.shape


@pytest.mark.parametrize('name', EMBEDS)
def test_patch_embed_contract(name):
    m = MODELS.build(dict(type=name), default_args=dict(in_channels=3, embed_dims=32, patch_size=4))
    assert m.patch_size == 4 and m(torch.randn(1, 3, 12, 20)).shape == (1, 32, 3, 5)


@pytest.mark.parametrize('name', HEADS)
def test_output_head_contract(name):
    m = MODELS.build(dict(type=name), default_args=dict(in_channels=32, out_channels=3, patch_size=4))
    assert m.patch_size == 4 and m(torch.randn(1, 32, 3, 5)).shape == (1, 3, 12, 20)
    assert any(m.last_layer is p for p in m.parameters())
