"""Every registered layer of ``transvae/models/layers`` by value (issue 23): FFNs, norms, position encodings,
samplers, patch embeds and output heads against torch's own modules / functionals or a hand computation written
index by index, with non-default, asymmetric settings (ratios, eps, group caps, RoPE bases, channel counts) on
non-square maps. Each slot has a reference table; a registered class of the slot without an entry fails its
contract test (classes registered from a user package are skipped there). Attention: ``test_attention_reference.py``.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slot_registry import registered
from transvae.models.layers import build_norm, build_position_encoding, gn_groups
from transvae.models.layers.sampling import build_sampler
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

FFNS = registered('transvae.models.layers.ffn')
PES = registered('transvae.models.layers.position')
SAMPLERS = registered('transvae.models.layers.sampling')
NORMS = registered('transvae.models.layers.norm')
PATCH = registered('transvae.models.layers.patch_embed')

ATOL, RTOL = 2e-5, 1e-4


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Random non-default values for every parameter (norm weights around 1, biases and weights around 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and name.endswith('weight'):  # norm scales
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return module


def reference_for(table: dict, name: str):
    """The reference of ``name`` in a slot table; fail for an in-tree class without one, skip a user variant."""
    if name in table:
        return table[name]
    cls = MODELS.get(name)
    if cls.__module__.startswith('transvae.'):
        pytest.fail(f'{name} ({cls.__module__}) is registered in its slot but has no value reference here')
    pytest.skip(f'{name} is a variant from {cls.__module__}: no reference known here')


def d(t: Tensor) -> Tensor:
    return t.detach().double()


def hand_linear(x: Tensor, lin: nn.Linear) -> Tensor:
    y = x @ d(lin.weight).T
    return y + d(lin.bias) if lin.bias is not None else y


def hand_gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def hand_silu(x: Tensor) -> Tensor:
    return x / (1.0 + torch.exp(-x))


def hand_conv3x3(m: Tensor, conv: nn.Conv2d, stride: int = 1, pad: tuple[int, int, int, int] = (1, 1, 1, 1),
                 depthwise: bool = False) -> Tensor:
    """3x3 convolution as a sum over the 9 taps of shifted, zero-padded maps (pad = left, right, top, bottom)."""
    w, b = d(conv.weight), d(conv.bias) if conv.bias is not None else None
    mp = F.pad(m, pad)
    hh = (mp.shape[-2] - 3) // stride + 1
    ww = (mp.shape[-1] - 3) // stride + 1
    out = 0
    for dy in range(3):
        for dx in range(3):
            tap = mp[..., dy:dy + stride * (hh - 1) + 1:stride, dx:dx + stride * (ww - 1) + 1:stride]
            if depthwise:
                out = out + w[:, 0, dy, dx].view(1, -1, 1, 1) * tap
            else:
                out = out + torch.einsum('oi,bihw->bohw', w[:, :, dy, dx], tap)
    return out + b.view(1, -1, 1, 1) if b is not None else out


def hand_conv1x1(m: Tensor, conv: nn.Conv2d) -> Tensor:
    return torch.einsum('oi,bihw->bohw', d(conv.weight)[:, :, 0, 0], m) + d(conv.bias).view(1, -1, 1, 1)


def hand_unshuffle(x: Tensor, f: int = 2) -> Tensor:
    """``out[b, c*f*f + i*f + j, y, x] = in[b, c, f*y + i, f*x + j]``, written as a loop over ``(i, j)``."""
    b, c, h, w = x.shape
    out = x.new_empty(b, c, f * f, h // f, w // f)
    for i in range(f):
        for j in range(f):
            out[:, :, i * f + j] = x[:, :, i::f, j::f]
    return out.reshape(b, c * f * f, h // f, w // f)


def hand_shuffle(x: Tensor, f: int = 2) -> Tensor:
    """Inverse of :func:`hand_unshuffle`: ``out[b, c, f*y + i, f*x + j] = in[b, c*f*f + i*f + j, y, x]``."""
    b, cf, h, w = x.shape
    c = cf // (f * f)
    xv = x.reshape(b, c, f * f, h, w)
    out = x.new_empty(b, c, f * h, f * w)
    for i in range(f):
        for j in range(f):
            out[:, :, i::f, j::f] = xv[:, :, i * f + j]
    return out


def hand_nearest2x(x: Tensor) -> Tensor:
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def hand_layer_norm(x: Tensor, norm: nn.Module) -> Tensor:
    """LayerNorm over the last dim (biased variance) with ``norm``'s eps / affine."""
    mu = x.mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt((x - mu).pow(2).mean(-1, keepdim=True) + norm.eps)
    return y * d(norm.weight) + d(norm.bias) if norm.weight is not None else y


def hand_rms_norm(x: Tensor, norm: nn.Module) -> Tensor:
    y = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)
    return y * d(norm.weight) if norm.weight is not None else y


def hand_group_norm(x: Tensor, groups: int, eps: float, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    b, c = x.shape[:2]
    xg = x.reshape(b, groups, -1)
    mu = xg.mean(-1, keepdim=True)
    y = ((xg - mu) / torch.sqrt((xg - mu).pow(2).mean(-1, keepdim=True) + eps)).reshape(x.shape)
    if weight is not None:
        y = y * d(weight).view(1, c, 1, 1) + d(bias).view(1, c, 1, 1)
    return y


def hand_map_norm(x: Tensor, norm: nn.Module) -> Tensor:
    """The ``(B, C, H, W)`` map norms by their formulas (GN groups read from the module; they are pinned apart)."""
    if isinstance(norm, nn.GroupNorm):
        return hand_group_norm(x, norm.num_groups, norm.eps, norm.weight, norm.bias)
    name = type(norm).__name__
    t = x.permute(0, 2, 3, 1)
    t = hand_layer_norm(t, norm) if name == 'LayerNorm2d' else hand_rms_norm(t, norm)
    return t.permute(0, 3, 1, 2)


# ================================================================================================= FFN slot
def _ref_pointwise(ffn, x, hw):
    return hand_linear(hand_gelu(hand_linear(x, ffn.fc1)), ffn.fc2)


def _ref_conv_ffn(depthwise: bool):
    def ref(ffn, x, hw):
        b, n, _ = x.shape
        h, w = hw
        u = hand_linear(x, ffn.fc1)  # (B, N, hidden), token n = row * W + col
        m = u.transpose(1, 2).reshape(b, -1, h, w)
        u = u + hand_conv3x3(m, ffn.conv, depthwise=depthwise).flatten(2).transpose(1, 2)
        return hand_linear(hand_gelu(u), ffn.fc2)
    return ref


def _ref_swiglu(ffn, x, hw):
    hidden = ffn.w3.in_features
    y = hand_linear(x, ffn.w12)
    gate, value = y[..., :hidden], y[..., hidden:]
    return hand_linear(hand_silu(gate) * value, ffn.w3)


FFN_REFERENCES = {'PointwiseFFN': _ref_pointwise, 'FullConvFFN': _ref_conv_ffn(False),
                  'DWConvFFN': _ref_conv_ffn(True), 'SwiGLUFFN': _ref_swiglu}


@pytest.mark.parametrize('name', FFNS)
@pytest.mark.parametrize('hw', [(3, 5), (5, 2)])
def test_every_ffn_matches_its_reference(name, hw):
    """Ratio 1.5 (not any class default), batch 2, non-square token grid (the fold order of conv FFNs shows)."""
    ref = reference_for(FFN_REFERENCES, name)
    ffn = randomise(MODELS.build(dict(type=name, ffn_ratio=1.5), default_args=dict(embed_dims=16)), 0)
    x = torch.randn(2, hw[0] * hw[1], 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ffn(x, hw).double(), ref(ffn, x.double(), hw), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('name,ratio,hidden', [('PointwiseFFN', 2.5, 40), ('FullConvFFN', 0.75, 12),
                                               ('DWConvFFN', 3.0, 48), ('SwiGLUFFN', 4.0, 42),
                                               ('SwiGLUFFN', 2.0, 21)])
def test_ffn_hidden_widths(name, ratio, hidden):
    """Hidden widths: ``int(C * r)``; SwiGLU ``int(2/3 * int(C * r))`` (LightningDiT: 2048 at C = 768, r = 4)."""
    ffn = MODELS.build(dict(type=name, embed_dims=16, ffn_ratio=ratio))
    assert ffn(torch.randn(1, 6, 16), (2, 3)).shape == (1, 6, 16)
    first = ffn.w12 if name == 'SwiGLUFFN' else ffn.fc1
    assert first.out_features == (2 * hidden if name == 'SwiGLUFFN' else hidden)
    assert MODELS.build(dict(type='SwiGLUFFN', embed_dims=768)).hidden == 2048


def test_ffn_activation_option_is_used():
    """``act_cfg`` replaces the GELU / SiLU (ReLU here) in the hand formula too."""
    for name in ('PointwiseFFN', 'FullConvFFN', 'SwiGLUFFN'):
        ffn = randomise(MODELS.build(dict(type=name, embed_dims=8, ffn_ratio=2.0, act_cfg=dict(type='ReLU'))), 2)
        x = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(3)).double()
        if name == 'SwiGLUFFN':
            y = hand_linear(x, ffn.w12)
            ref = hand_linear(y[..., :ffn.hidden].clamp_min(0) * y[..., ffn.hidden:], ffn.w3)
        elif name == 'PointwiseFFN':
            ref = hand_linear(hand_linear(x, ffn.fc1).clamp_min(0), ffn.fc2)
        else:
            u = hand_linear(x, ffn.fc1)
            u = u + hand_conv3x3(u.transpose(1, 2).reshape(2, -1, 2, 3), ffn.conv).flatten(2).transpose(1, 2)
            ref = hand_linear(u.clamp_min(0), ffn.fc2)
        torch.testing.assert_close(ffn(x.float(), (2, 3)).double(), ref, atol=ATOL, rtol=RTOL)


# ================================================================================================= norm slot
def _token_or_map(name: str) -> bool:
    """True for the map norms ``(B, C, H, W)``."""
    return name.endswith('2d') or name == 'GN'


@pytest.mark.parametrize('name', NORMS)
@pytest.mark.parametrize('affine', [True, False])
def test_every_norm_matches_its_formula(name, affine):
    """eps = 1e-2 on inputs of variance ~1e-2, so a lost / default eps shows; random affine weights; 24 channels,
    a non-square map. GN is built with 32 groups capped at 4 channels per group (-> 6 groups)."""
    kw = dict(num_groups=32, min_group_channels=4) if name == 'GN' else {}
    norm = build_norm(dict(type=name, eps=1e-2, affine=affine, **kw), 24)
    randomise(norm, 4)
    g = torch.Generator().manual_seed(5)
    if _token_or_map(name):
        x = 0.1 * torch.randn(2, 24, 3, 5, generator=g) + 0.05
        ref = hand_map_norm(x.double(), norm)
    else:
        x = 0.1 * torch.randn(2, 7, 24, generator=g) + 0.05
        ref = (hand_layer_norm if name == 'LN' else hand_rms_norm)(x.double(), norm)
    torch.testing.assert_close(norm(x).double(), ref, atol=ATOL, rtol=RTOL)
    if name == 'GN':
        assert norm.num_groups == 6


@pytest.mark.parametrize('name', NORMS)
def test_norm_defaults(name):
    """The defaults configs rely on: eps 1e-6 (LDM / timm ViT, not torch's 1e-5), affine on, GN(32)."""
    norm = build_norm(dict(type=name), 64)
    assert norm.eps == 1e-6 and norm.weight is not None
    if name == 'GN':
        assert norm.num_groups == 32


def test_rmsnorm_equals_torch_rmsnorm():
    """``RMSNorm`` (token) and ``RMSNorm2d`` (map) against ``torch.nn.RMSNorm`` with the same weight and eps."""
    from transvae.models.layers import RMSNorm, RMSNorm2d
    ours, ours2d = RMSNorm(12, eps=1e-3), RMSNorm2d(12, eps=1e-3)
    ref = nn.RMSNorm(12, eps=1e-3)
    with torch.no_grad():
        w = torch.rand(12, generator=torch.Generator().manual_seed(6)) + 0.5
        ours.weight.copy_(w), ours2d.weight.copy_(w), ref.weight.copy_(w)
    x = 0.05 * torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours(x), ref(x))
    m = x.view(2, 12, 5, 1).expand(2, 12, 5, 3).contiguous()
    torch.testing.assert_close(ours2d(m), ref(m.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


@pytest.mark.parametrize('channels,num_groups,min_group_channels,want', [
    (24, 32, 1, 24), (24, 32, 4, 6), (24, 32, 5, 4), (48, 32, 1, 24), (48, 32, 4, 12), (96, 32, 1, 32),
    (20, 8, 3, 5), (12, 4, 1, 4), (7, 32, 4, 1), (8, 32, 16, 1), (36, 10, 1, 9)])
def test_gn_group_count(channels, num_groups, min_group_channels, want):
    """The largest divisor of C not above ``min(num_groups, C // min_group_channels)`` (at least 1)."""
    by_hand = max(g for g in range(1, max(1, min(num_groups, channels // min_group_channels)) + 1)
                  if channels % g == 0)
    assert by_hand == want
    gn = build_norm(dict(type='GN', num_groups=num_groups, min_group_channels=min_group_channels), channels)
    assert gn.num_groups == want
    if min_group_channels == 1:
        assert gn_groups(channels, num_groups) == want


# ================================================================================================= position slot
def _hand_sincos(hw: tuple[int, int], dims: int, theta: float) -> Tensor:
    """Token ``n = row * W + col``: ``[sin(row w_k), cos(row w_k), sin(col w_k), cos(col w_k)]``,
    ``w_k = theta^(-k / (C/4))``, ``k < C/4``."""
    q = dims // 4
    out = torch.empty(hw[0] * hw[1], dims, dtype=torch.float64)
    for n in range(hw[0] * hw[1]):
        row, col = n // hw[1], n % hw[1]
        for k in range(q):
            om = theta ** (-k / q)
            out[n, k], out[n, q + k] = math.sin(row * om), math.cos(row * om)
            out[n, 2 * q + k], out[n, 3 * q + k] = math.sin(col * om), math.cos(col * om)
    return out


def _hand_rope_q(q: Tensor, hw: tuple[int, int], theta: float) -> Tensor:
    hd = q.shape[-1]
    out = q.clone()
    for n in range(hw[0] * hw[1]):
        pos = (n // hw[1], n % hw[1])
        for j in range(hd // 2):
            axis, k = (0, j) if j < hd // 4 else (1, j - hd // 4)
            ang = pos[axis] * theta ** (-4.0 * k / hd)
            a, b = q[..., n, 2 * j], q[..., n, 2 * j + 1]
            out[..., n, 2 * j] = a * math.cos(ang) - b * math.sin(ang)
            out[..., n, 2 * j + 1] = a * math.sin(ang) + b * math.cos(ang)
    return out


def _ref_nope(pe, x, hw, q, k):
    return x, (q, k)


def _ref_rope(pe, x, hw, q, k):
    return x, (_hand_rope_q(q, hw, 37.0), _hand_rope_q(k, hw, 37.0))


def _ref_sincos(pe, x, hw, q, k):
    return x + _hand_sincos(hw, x.shape[-1], 37.0), (q, k)


def _ref_ape(pe, x, hw, q, k):
    """On its training grid the table is added as is; elsewhere bicubic (pinned against timm in
    test_position_reference.py)."""
    assert tuple(hw) == pe.grid
    return x + d(pe.pos_embed), (q, k)


PE_REFERENCES = {'NoPE': _ref_nope, 'RoPE2D': _ref_rope, 'SinCosAPE': _ref_sincos, 'LearnableAPE': _ref_ape}


@pytest.mark.parametrize('name', PES)
@pytest.mark.parametrize('hw', [(3, 5), (4, 2)])
def test_every_position_encoding_matches_its_reference(name, hw):
    """Tokens through ``embed_tokens`` and per-head q / k through ``qk_transform`` on a non-square grid, base 37
    (not the default 10000), head_dim 8, 16 channels."""
    ref = reference_for(PE_REFERENCES, name)
    cfg = dict(type=name)
    if name in ('RoPE2D', 'SinCosAPE'):
        cfg['theta'] = 37.0
    if name == 'LearnableAPE':
        cfg['grid_size'] = hw
    pe = build_position_encoding(cfg, head_dim=8, embed_dims=16)
    randomise(pe, 8)
    g = torch.Generator().manual_seed(9)
    n = hw[0] * hw[1]
    x, q, k = torch.randn(2, n, 16, generator=g), torch.randn(2, 2, n, 8, generator=g), torch.randn(2, 2, n, 8,
                                                                                                   generator=g)
    want_x, (want_q, want_k) = ref(pe, x.double(), hw, q.double(), k.double())
    torch.testing.assert_close(pe.embed_tokens(x, hw).double(), want_x, atol=ATOL, rtol=RTOL)
    pos = pe.qk_transform(hw)
    got_q, got_k = (q, k) if pos is None else pos(q, k)
    torch.testing.assert_close(got_q.double(), want_q, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(got_k.double(), want_k, atol=ATOL, rtol=RTOL)


# ================================================================================================= sampler slot
def _ref_conv_unshuffle(s, x):
    return hand_unshuffle(hand_conv3x3(x, s.conv))


def _hand_avg_shortcut(x: Tensor, out_channels: int) -> Tensor:
    """DC-AE's space-to-channel shortcut by definition: unshuffle, then mean of consecutive channel groups."""
    u = hand_unshuffle(x)
    b, c, h, w = u.shape
    return u.reshape(b, out_channels, c // out_channels, h, w).mean(2)


def _hand_dup_shortcut(x: Tensor, out_channels: int) -> Tensor:
    """Channel-to-space shortcut: repeat each channel ``4 C_out / C`` times (consecutively), then shuffle."""
    return hand_shuffle(x.repeat_interleave(4 * out_channels // x.shape[1], dim=1))


def _ref_dc_down(s, x):
    return _ref_conv_unshuffle(s, x) + _hand_avg_shortcut(x, s.out_channels)


def _ref_interp_up(s, x):
    return hand_conv3x3(hand_nearest2x(x), s.conv)


def _ref_dc_up(s, x):
    return _ref_interp_up(s, x) + _hand_dup_shortcut(x, s.out_channels)


def _ref_strided(s, x):
    return hand_conv3x3(x, s.conv, stride=2, pad=(0, 1, 0, 1))  # pad right and bottom only


def _ref_merging(s, x):
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2))
    t = hand_unshuffle(x).permute(0, 2, 3, 1)  # channel-major: [c0(0,0), c0(0,1), c0(1,0), c0(1,1), c1 ...]
    return (hand_layer_norm(t, s.norm) @ d(s.reduction.weight).T).permute(0, 3, 1, 2)


def _ref_expanding(s, x):
    t = x.permute(0, 2, 3, 1) @ d(s.expand.weight).T
    t = hand_shuffle(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return hand_layer_norm(t, s.norm).permute(0, 3, 1, 2)


SAMPLER_REFERENCES = {'ConvPixelUnshuffleDown': _ref_conv_unshuffle, 'DCDownsample': _ref_dc_down,
                      'InterpConvUp': _ref_interp_up, 'DCUpsample': _ref_dc_up, 'StridedConvDown': _ref_strided,
                      'PatchMerging': _ref_merging, 'PatchExpanding': _ref_expanding}


@pytest.mark.parametrize('name', SAMPLERS)
@pytest.mark.parametrize('cin,cout', [(8, 16), (16, 8), (12, 24)])
def test_every_sampler_matches_its_reference(name, cin, cout):
    """Channels up and down (C_in != C_out), a 6x10 map, batch 2; each DC shortcut both on its whole-channel
    fast path and on the general unshuffle / shuffle path (e.g. 8 -> 16 down averages pixel pairs of a channel)."""
    ref = reference_for(SAMPLER_REFERENCES, name)
    s = randomise(build_sampler(dict(type=name), cin, cout), 10)
    x = torch.randn(2, cin, 6, 10, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(s(x).double(), ref(s, x.double()), atol=ATOL, rtol=RTOL)


def test_patch_merging_pads_odd_maps_with_zeros():
    s = randomise(build_sampler(dict(type='PatchMerging'), 4, 6), 12)
    x = torch.randn(1, 4, 5, 7, generator=torch.Generator().manual_seed(13))
    y = s(x)
    assert y.shape == (1, 6, 3, 4)
    torch.testing.assert_close(y.double(), _ref_merging(s, x.double()), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('c,out', [(8, 12), (12, 8), (8, 2), (6, 12), (4, 16), (16, 4)])
def test_dc_shortcuts_match_their_definition(c, out):
    """Both shortcuts against the index-by-index definition, fast paths (whole channels) and general case."""
    from transvae.models.layers import channel_to_space_duplicate, space_to_channel_average
    x = torch.randn(2, c, 6, 10, generator=torch.Generator().manual_seed(14))
    if 4 * c % out == 0:
        torch.testing.assert_close(space_to_channel_average(x, out).double(), _hand_avg_shortcut(x.double(), out),
                                   atol=1e-6, rtol=0)
    if 4 * out % c == 0:
        torch.testing.assert_close(channel_to_space_duplicate(x, out).double(), _hand_dup_shortcut(x.double(), out),
                                   atol=0, rtol=0)


# ============================================================================================ patch embed / head slots
def _ref_conv_patch(m, x):
    """Patches flattened channel-major (c, dy, dx) times the kernel, plus bias, then the (optional) map norm."""
    p = m.patch_size
    b, c, h, w = x.shape
    patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, h // p, w // p, -1)
    y = (patches @ d(m.proj.weight).reshape(m.proj.out_channels, -1).T + d(m.proj.bias)).permute(0, 3, 1, 2)
    return y if isinstance(m.norm, nn.Identity) else hand_map_norm(y, m.norm)


def _ref_seqconv_embed(m, x):
    mods = list(m.layers)
    for conv, norm in zip(mods[0::3], mods[1::3]):
        x = hand_gelu(hand_map_norm(hand_conv3x3(x, conv, stride=2, pad=(1, 1, 1, 1)), norm))
    return x


def _ref_pixel_shuffle_head(m, x):
    return hand_conv3x3(hand_shuffle(hand_conv1x1(x, m.proj), m.patch_size), m.conv_out)


def _ref_seqconv_head(m, x):
    mods = [mod for mod in m.layers if not isinstance(mod, nn.Upsample)]
    for conv, norm in zip(mods[0::3], mods[1::3]):
        x = hand_gelu(hand_map_norm(hand_conv3x3(hand_nearest2x(x), conv), norm))
    return hand_conv3x3(x, m.conv_out)


PATCH_REFERENCES = {'ConvPatchEmbed': _ref_conv_patch, 'SeqConvPatchEmbed': _ref_seqconv_embed,
                    'PixelShuffleHead': _ref_pixel_shuffle_head, 'SeqConvUpHead': _ref_seqconv_head}


@pytest.mark.parametrize('name', PATCH)
def test_every_patch_embed_and_head_matches_its_reference(name):
    """Patch 4 on a 3x5 token grid (12x20 images), 16 token channels, batch 2; non-default options where the class
    has them (a LN2d after the conv patch embed, a 5-channel pixel-shuffle hidden width, GN(8) in the SeqConv
    stacks)."""
    ref = reference_for(PATCH_REFERENCES, name)
    g = torch.Generator().manual_seed(15)
    if 'Head' in name:
        extra = dict(hidden_channels=5) if name == 'PixelShuffleHead' else dict(norm_cfg=dict(type='GN', num_groups=2))
        m = MODELS.build(dict(type=name, **extra), default_args=dict(in_channels=16, out_channels=3, patch_size=4))
        x = torch.randn(2, 16, 3, 5, generator=g)
    else:
        extra = dict(norm_cfg=dict(type='LN2d')) if name == 'ConvPatchEmbed' else dict(
            norm_cfg=dict(type='GN', num_groups=2))
        m = MODELS.build(dict(type=name, **extra), default_args=dict(in_channels=3, embed_dims=16, patch_size=4))
        x = torch.randn(2, 3, 12, 20, generator=g)
    randomise(m, 16)
    torch.testing.assert_close(m(x).double(), ref(m, x.double()), atol=ATOL, rtol=RTOL)


def test_seqconv_channel_ramps_and_default_head_groups():
    """Embed ramp ``D/2^(k-1) ... D`` (floored by ``min_channels``); head ramp ``D/2 ... D/2^k`` (floor 8) with the
    default GN capped at 4 channels per group."""
    emb = MODELS.build(dict(type='SeqConvPatchEmbed', in_channels=3, embed_dims=64, patch_size=8))
    assert [c.out_channels for c in emb.layers if isinstance(c, nn.Conv2d)] == [16, 32, 64]
    emb = MODELS.build(dict(type='SeqConvPatchEmbed', in_channels=3, embed_dims=64, patch_size=8, min_channels=24))
    assert [c.out_channels for c in emb.layers if isinstance(c, nn.Conv2d)] == [24, 32, 64]
    head = MODELS.build(dict(type='SeqConvUpHead', in_channels=64, out_channels=3, patch_size=16))
    convs = [c.out_channels for c in head.layers if isinstance(c, nn.Conv2d)]
    assert convs == [32, 16, 8, 8]
    assert [n.num_groups for n in head.layers if isinstance(n, nn.GroupNorm)] == [8, 4, 2, 2]
