"""Attention layers against references that share none of their code (issue 23): a hand computation with plain
torch ops in float64 (``softmax(Q K^T / sqrt(d) + bias) V`` per head, with the layer's own Q / K norm weights and
the RoPE rotation written out), and ``torch.nn.MultiheadAttention`` with copied weights where the layer maps onto
it. Settings are deliberately asymmetric: non-square grids, several head dims (1 head, many heads), batch > 1,
non-unit norm weights (different for Q and K), a non-default RoPE base, masks that are not all zero.

Every registered class of the attention slot must have a value reference here (``ATTN_REFERENCES``)."""
from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import Tensor, nn

from slot_registry import registered
from transvae.models.layers import MultiHeadSelfAttention, RoPE2D, WindowAttention
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

ATTNS = registered('transvae.models.layers.attention') + registered('transvae.models.layers.window_attention')


# ----------------------------------------------------------------------------------------------- hand pieces
def hand_norm(x: Tensor, norm: nn.Module, kind: str | None) -> Tensor:
    """Per-head norm of ``x`` ``(..., hd)`` (float64) by its defining formula with ``norm``'s weights."""
    if kind is None:
        return x
    w = norm.weight.detach().double()
    if kind == 'RMSNorm':
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * w
    if kind == 'LN':
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + norm.eps) * w + norm.bias.detach().double()
    raise AssertionError(kind)


def hand_rope(x: Tensor, hw: tuple[int, int], theta: float) -> Tensor:
    """2D axial RoPE on ``x`` ``(..., N, hd)``: pair ``j < hd/4`` turns by ``row * theta^(-4j/hd)``, pair
    ``hd/4 + j`` by ``col * theta^(-4j/hd)``; ``(a, b) -> (a cos - b sin, a sin + b cos)``."""
    h, w = hw
    hd = x.shape[-1]
    n = torch.arange(h * w, dtype=torch.float64)
    row, col = (n // w)[:, None], (n % w)[:, None]
    j = torch.arange(hd // 4, dtype=torch.float64)[None]
    freq = theta ** (-4.0 * j / hd)
    ang = torch.cat([row * freq, col * freq], dim=1)  # (N, hd/2)
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * ang.cos() - b * ang.sin()
    out[..., 1::2] = a * ang.sin() + b * ang.cos()
    return out


def hand_softmax_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
    """``softmax(q k^T / sqrt(d) + bias) v`` with an explicit max-subtracted exponential."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias
    e = torch.exp(s - s.amax(-1, keepdim=True))
    return (e / e.sum(-1, keepdim=True)) @ v


def heads_by_hand(attn: nn.Module, x: Tensor, hw: tuple[int, int], kind: str | None, theta: float | None,
                  bias_of_head=None) -> Tensor:
    """The attention of ``attn`` on ``x`` ``(B, N, C)``, one head at a time from channel slices of the QKV output.

    Q / K / V of head ``h`` are channels ``[h*hd, (h+1)*hd)`` of the Q / K / V thirds of the projection (the
    layout of ``nn.MultiheadAttention``'s ``in_proj``); the heads are concatenated along channels before ``proj``.
    """
    c = x.shape[-1]
    hd = attn.head_dim
    xd = x.double()
    wq = attn.qkv.weight.detach().double()
    qkv = xd @ wq.T
    if attn.qkv.bias is not None:
        qkv = qkv + attn.qkv.bias.detach().double()
    outs = []
    for h in range(c // hd):
        q, k, v = (qkv[..., i * c + h * hd:i * c + (h + 1) * hd] for i in range(3))
        q, k = hand_norm(q, attn.q_norm, kind), hand_norm(k, attn.k_norm, kind)
        if theta is not None:
            q, k = hand_rope(q, hw, theta), hand_rope(k, hw, theta)
        outs.append(hand_softmax_attention(q, k, v, None if bias_of_head is None else bias_of_head(h)))
    o = torch.cat(outs, dim=-1)
    return o @ attn.proj.weight.detach().double().T + attn.proj.bias.detach().double()


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Give every parameter (norm weights included, Q and K norms differently) random non-default values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('norm.weight'):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return module


# ----------------------------------------------------------------------------------------------- global MHSA
@pytest.mark.parametrize('embed_dims,head_dim', [(24, 8), (16, 16), (24, 4)])
@pytest.mark.parametrize('hw', [(3, 5), (4, 1)])
def test_mhsa_equals_torch_multihead_attention(embed_dims, head_dim, hw):
    """No Q/K norm, no position: exactly ``nn.MultiheadAttention`` with the same in / out projections."""
    attn = randomise(MultiHeadSelfAttention(embed_dims, head_dim=head_dim), 0)
    mha = nn.MultiheadAttention(embed_dims, embed_dims // head_dim, bias=True, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight)
        mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.weight.copy_(attn.proj.weight)
        mha.out_proj.bias.copy_(attn.proj.bias)
    x = torch.randn(3, hw[0] * hw[1], embed_dims, generator=torch.Generator().manual_seed(1))
    ref = mha(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(attn(x, hw), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('kind', [None, 'RMSNorm', 'LN'])
@pytest.mark.parametrize('embed_dims,head_dim,qkv_bias', [(24, 8, True), (16, 16, False), (24, 4, True)])
def test_mhsa_matches_hand_computation(kind, embed_dims, head_dim, qkv_bias):
    """Q/K norm (own weights per Q and K), then RoPE (base 100, not the default), then softmax(QK^T/sqrt(d))V."""
    hw, theta = (3, 5), 100.0
    norm_cfg = None if kind is None else dict(type=kind, eps=1e-3)
    attn = randomise(MultiHeadSelfAttention(embed_dims, head_dim=head_dim, qk_norm_cfg=norm_cfg,
                                            qkv_bias=qkv_bias), 2)
    pos = RoPE2D(head_dim=head_dim, theta=theta).qk_transform(hw)
    x = torch.randn(2, 15, embed_dims, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(attn(x, hw, pos).double(), heads_by_hand(attn, x, hw, kind, theta),
                               atol=2e-5, rtol=1e-4)
    # and without the position transform
    torch.testing.assert_close(attn(x, hw, None).double(), heads_by_hand(attn, x, hw, kind, None),
                               atol=2e-5, rtol=1e-4)


def test_mhsa_tokens_of_one_image_do_not_see_another():
    """Batch items are independent: attention over tokens never mixes images (batch 3 == three batch-1 calls)."""
    attn = randomise(MultiHeadSelfAttention(16, head_dim=8, qk_norm_cfg=dict(type='RMSNorm')), 4)
    x = torch.randn(3, 10, 16, generator=torch.Generator().manual_seed(5))
    pos = RoPE2D(head_dim=8).qk_transform((2, 5))
    whole = attn(x, (2, 5), pos)
    for i in range(3):
        torch.testing.assert_close(whole[i:i + 1], attn(x[i:i + 1], (2, 5), pos), atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- window attention
def hand_window_bias(attn: WindowAttention, window: tuple[int, int], h: int) -> Tensor:
    """Swin-v1 relative position bias of head ``h``: entry ``(i, j)`` is table row
    ``(dy + W - 1) * (2W - 1) + (dx + W - 1)`` with ``(dy, dx)`` = position of ``i`` minus position of ``j``."""
    wh, ww = window
    span = 2 * attn.window_size - 1
    table = attn.relative_position_bias_table.detach().double()
    n = wh * ww
    out = torch.empty(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            dy, dx = i // ww - j // ww, i % ww - j % ww
            out[i, j] = table[(dy + attn.window_size - 1) * span + dx + attn.window_size - 1, h]
    return out


@pytest.mark.parametrize('kind', [None, 'RMSNorm'])
def test_window_attention_matches_hand_computation(kind):
    """Bias table lookup on a non-square window smaller than ``window_size``, a (nW, n, n) mask whose windows differ,
    Q/K norm and a window-local RoPE: per head, ``softmax(QK^T/sqrt(d) + bias + mask) V``."""
    window, nw, b = (3, 5), 2, 2
    n = window[0] * window[1]
    attn = randomise(WindowAttention(24, head_dim=8, window_size=6,
                                     qk_norm_cfg=None if kind is None else dict(type=kind, eps=1e-3)), 6)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(b * nw, n, 24, generator=g)
    blocked = torch.rand(nw, n, n, generator=g) < 0.3
    blocked &= ~torch.eye(n, dtype=torch.bool)  # no fully masked row
    mask = torch.zeros(nw, n, n).masked_fill(blocked, float('-inf'))
    pos = RoPE2D(head_dim=8, theta=50.0).qk_transform(window)
    out = attn(x, window, pos, mask)
    # windows of one image are consecutive: item i uses mask[i % nW]
    ref = torch.cat([heads_by_hand(attn, x[i:i + 1], window, kind, 50.0,
                                   lambda h, i=i: hand_window_bias(attn, window, h) + mask[i % nw].double())
                     for i in range(b * nw)])
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=1e-4)
    # without a mask the bias alone is added
    ref = torch.cat([heads_by_hand(attn, x[i:i + 1], window, kind, None,
                                   lambda h: hand_window_bias(attn, window, h)) for i in range(b * nw)])
    torch.testing.assert_close(attn(x, window, None).double(), ref, atol=2e-5, rtol=1e-4)


def test_window_attention_without_bias_table():
    """``rel_pos_bias=False``: the mask alone (per window) is added; no table exists."""
    window, nw = (2, 3), 3
    n = 6
    attn = randomise(WindowAttention(16, head_dim=8, window_size=4, rel_pos_bias=False), 10)
    assert attn.relative_position_bias_table is None
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2 * nw, n, 16, generator=g)
    blocked = (torch.rand(nw, n, n, generator=g) < 0.4) & ~torch.eye(n, dtype=torch.bool)
    mask = torch.zeros(nw, n, n).masked_fill(blocked, float('-inf'))
    ref = torch.cat([heads_by_hand(attn, x[i:i + 1], window, None, None, lambda h, i=i: mask[i % nw].double())
                     for i in range(2 * nw)])
    torch.testing.assert_close(attn(x, window, None, mask).double(), ref, atol=2e-5, rtol=1e-4)
    ref = torch.cat([heads_by_hand(attn, x[i:i + 1], window, None, None) for i in range(2 * nw)])
    torch.testing.assert_close(attn(x, window).double(), ref, atol=2e-5, rtol=1e-4)


# ----------------------------------------------------------------------------------------------- the whole slot
def _ref_mhsa(attn, x, hw, theta):
    return heads_by_hand(attn, x, hw, 'RMSNorm', theta)


def _ref_window(attn, x, hw, theta):
    return heads_by_hand(attn, x, hw, 'RMSNorm', theta, lambda h: hand_window_bias(attn, hw, h))


ATTN_REFERENCES = {'MultiHeadSelfAttention': _ref_mhsa, 'WindowAttention': _ref_window}


@pytest.mark.parametrize('name', ATTNS)
def test_every_registered_attention_has_a_value_reference(name):
    """Slot contract by value: every registered attention (RMSNorm Q/K, RoPE base 100, 3x5 grid, 3 heads) equals
    its hand reference. A new class of the slot in transvae must add its reference to ``ATTN_REFERENCES``."""
    cls = MODELS.get(name)
    if name not in ATTN_REFERENCES:
        if cls.__module__.startswith('transvae.'):
            pytest.fail(f'{name} ({cls.__module__}) has no value reference in ATTN_REFERENCES')
        pytest.skip(f'{name} is a variant from {cls.__module__}: no reference known here')
    hw, theta = (3, 5), 100.0
    kw = dict(window_size=5) if 'window_size' in inspect.signature(cls.__init__).parameters else {}
    attn = randomise(MODELS.build(dict(type=name, qk_norm_cfg=dict(type='RMSNorm', eps=1e-3)),
                                  default_args=dict(embed_dims=24, head_dim=8, **kw)), 8)
    x = torch.randn(2, 15, 24, generator=torch.Generator().manual_seed(9))
    out = attn(x, hw, RoPE2D(head_dim=8, theta=theta).qk_transform(hw))
    torch.testing.assert_close(out.double(), ATTN_REFERENCES[name](attn, x, hw, theta), atol=2e-5, rtol=1e-4)
