"""``transvae/models/layers``: the cases the mutation run (tools/analysis_tools/mutation.sh, docs/TESTING.md) found
unpinned, each by value against an external reference (timm's Swin PatchMerging, diffusers' LDM Downsample2D, torch
functionals) or a hand computation, with asymmetric settings on non-square maps whose odd sides are chosen so that a
wrong modulus or a wrong boolean shows: the constructor defaults of the patch embeds and heads (a ViT-B/16), the
power-of-two messages, the norm of ``ConvPatchEmbed``, odd maps through PatchMerging and StridedConvDown."""
from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transvae.models.layers.norm import GroupNorm
from transvae.models.layers.patch_embed import ConvPatchEmbed, PixelShuffleHead, SeqConvPatchEmbed, SeqConvUpHead
from transvae.models.layers.sampling import PatchMerging, StridedConvDown

pytestmark = pytest.mark.usefixtures('one_thread')


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Norm scales around 1, every other parameter around 0 (none left at its initial value)."""
    g = gen(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(0.5 + torch.rand(p.shape, generator=g) if p.dim() == 1 and name.endswith('norm.weight')
                    else 0.3 * torch.randn(p.shape, generator=g))
    return module


# ================================================================================= patch embeds and output heads
def test_patch_embed_and_head_defaults_are_a_vit_b16():
    """Built with no argument: 3 image channels, D = 768, p = 16 (the ViT-B/16 the docstrings name)."""
    x = torch.randn(1, 3, 32, 48, generator=gen(0))
    for embed in (ConvPatchEmbed(), SeqConvPatchEmbed()):
        assert embed.patch_size == 16 and embed(x).shape == (1, 768, 2, 3)
    t = torch.randn(1, 768, 2, 3, generator=gen(1))
    for head in (PixelShuffleHead(), SeqConvUpHead()):
        assert head.patch_size == 16 and head(t).shape == (1, 3, 32, 48)
    # the ramps: D / 2^(k-1) ... D up (no floor at min_channels=1), D/2 ... D/16 down, floored at 8
    assert [m.out_channels for m in SeqConvPatchEmbed().layers if isinstance(m, nn.Conv2d)] == [96, 192, 384, 768]
    assert [m.out_channels for m in SeqConvUpHead().layers if isinstance(m, nn.Conv2d)] == [384, 192, 96, 48]
    assert PixelShuffleHead().proj.out_channels == 3 * 16 ** 2


def test_seqconv_embed_default_ramp_halves_down_to_one_channel_and_uses_gn_gelu():
    """min_channels=1 (the default) keeps DHVT's halving ramp even below 2 channels: D=8, p=16 -> 1, 2, 4, 8."""
    m = SeqConvPatchEmbed(in_channels=2, embed_dims=8, patch_size=16)
    convs = [x for x in m.layers if isinstance(x, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [1, 2, 4, 8] and convs[0].in_channels == 2
    norms = [x for x in m.layers if isinstance(x, GroupNorm)]
    assert len(norms) == 4 and [n.num_groups for n in norms] == [1, 2, 4, 8]  # GN(32) capped at C
    assert sum(isinstance(x, nn.GELU) for x in m.layers) == 4
    head = SeqConvUpHead(in_channels=64, out_channels=3, patch_size=4)
    norms = [x for x in head.layers if isinstance(x, GroupNorm)]
    assert [n.num_groups for n in norms] == [8, 4]  # GN with min_group_channels=4 on 32, 16 channels


@pytest.mark.parametrize('cls,name', [(SeqConvPatchEmbed, 'SeqConvPatchEmbed'), (SeqConvUpHead, 'SeqConvUpHead')])
def test_seqconv_refuses_a_patch_size_that_is_not_a_power_of_two(cls, name):
    with pytest.raises(ValueError, match=rf'^{name} needs a power-of-two patch_size, got 12$'):
        cls(3, 16, 12)


def test_conv_patch_embed_norm_is_applied_by_value():
    """``norm_cfg=LN2d``: the conv (kernel = stride = 2) then a LayerNorm over channels, against torch's functionals."""
    m = randomise(ConvPatchEmbed(in_channels=3, embed_dims=6, patch_size=2, norm_cfg=dict(type='LN2d', eps=1e-3)), 2)
    x = torch.randn(2, 3, 6, 10, generator=gen(3))
    y = F.conv2d(x, m.proj.weight, m.proj.bias, stride=2).permute(0, 2, 3, 1)
    want = F.layer_norm(y, (6,), m.norm.weight, m.norm.bias, 1e-3).permute(0, 3, 1, 2)
    torch.testing.assert_close(m(x), want, atol=1e-5, rtol=1e-5)


# ==================================================================================================== samplers
@pytest.mark.parametrize('hw', [(9, 8), (4, 9), (6, 5), (7, 7)])
def test_patch_merging_matches_timm_on_odd_maps(hw):
    """timm's Swin PatchMerging (channels-last, zero-pads odd sides) with the same weights, re-indexed: ours
    concatenates pixel_unshuffle's channel-major (c, dy, dx), timm's (dx, dy, c). Sides 9, 5 and 9 are where
    ``% 2`` and ``% 3``, ``or`` and ``and`` differ; the default width is 2 C."""
    from timm.models.swin_transformer import PatchMerging as TimmPatchMerging
    c = 3
    ours = randomise(PatchMerging(c), 4)
    assert ours.out_channels == 2 * c
    ref = TimmPatchMerging(c, norm_layer=partial(nn.LayerNorm, eps=ours.norm.eps))
    o = torch.arange(4 * c)
    ch, dy, dx = o // 4, (o % 4) // 2, o % 2
    t = dx * 2 * c + dy * c + ch  # timm's feature index of our feature o
    with torch.no_grad():
        ref.norm.weight[t] = ours.norm.weight
        ref.norm.bias[t] = ours.norm.bias
        ref.reduction.weight[:, t] = ours.reduction.weight
    assert ref.reduction.bias is None and ours.reduction.bias is None
    x = torch.randn(2, c, *hw, generator=gen(5))
    want = ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert want.shape == (2, 2 * c, (hw[0] + 1) // 2, (hw[1] + 1) // 2)
    torch.testing.assert_close(ours(x), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('hw', [(7, 10), (8, 9)])
def test_strided_conv_down_matches_diffusers_downsample2d(hw):
    """LDM's downsampler is diffusers' Downsample2D(use_conv, padding=0): pad right / bottom by one, conv 3x3 / 2;
    odd sides show a pad of 2 (one more output column or row)."""
    from diffusers.models.downsampling import Downsample2D
    ours = randomise(StridedConvDown(4, 6), 6)
    ref = Downsample2D(4, use_conv=True, out_channels=6, padding=0)
    ref.conv.load_state_dict(ours.conv.state_dict())
    x = torch.randn(2, 4, *hw, generator=gen(7))
    want = ref(x)
    assert want.shape == (2, 6, hw[0] // 2, hw[1] // 2)
    torch.testing.assert_close(ours(x), want, atol=1e-5, rtol=1e-5)


# ========================================================================================================= FFNs
def test_ffn_default_ratios_and_bias():
    """The ratios the docstrings state: 4 (ViT MLP, depthwise conv FFN), 1 (TransVAE's dense conv FFN); SwiGLU's
    hidden width 2/3 of the ratio-4 MLP, with biases by default."""
    from transvae.models.layers.ffn import DWConvFFN, FullConvFFN, PointwiseFFN, SwiGLUFFN
    assert PointwiseFFN(12).fc1.out_features == 48 and DWConvFFN(12).fc1.out_features == 48
    assert FullConvFFN(12).fc1.out_features == 12
    s = SwiGLUFFN(12)
    assert s.hidden == 32 and s.w12.out_features == 64 and s.w12.bias is not None and s.w3.bias is not None


@pytest.mark.parametrize('bias', [False, True])
def test_swiglu_bias_switch_by_value(bias):
    """``bias=False`` has no bias parameters at all; the value is ``W3(silu(x W1) * (x W2))`` with torch's silu."""
    from transvae.models.layers.ffn import SwiGLUFFN
    m = randomise(SwiGLUFFN(8, ffn_ratio=3.0, bias=bias), 8)
    assert (m.w12.bias is not None) is bias and (m.w3.bias is not None) is bias
    x = torch.randn(2, 15, 8, generator=gen(9))
    gate, value = F.linear(x, m.w12.weight, m.w12.bias).chunk(2, dim=-1)
    torch.testing.assert_close(m(x, (3, 5)), F.linear(F.silu(gate) * value, m.w3.weight, m.w3.bias),
                               atol=1e-5, rtol=1e-5)


def test_dwconv_ffn_passes_its_activation_on():
    """A non-default activation (ReLU) reaches the depthwise conv FFN: value against torch's conv2d, groups = hidden."""
    from transvae.models.layers.ffn import DWConvFFN
    m = randomise(DWConvFFN(4, ffn_ratio=2.0, act_cfg=dict(type='ReLU')), 10)
    assert m.conv.groups == 8
    x = torch.randn(2, 15, 4, generator=gen(11))
    u = F.linear(x, m.fc1.weight, m.fc1.bias)
    mp = u.transpose(1, 2).reshape(2, 8, 3, 5)
    u = u + F.conv2d(mp, m.conv.weight, m.conv.bias, padding=1, groups=8).flatten(2).transpose(1, 2)
    torch.testing.assert_close(m(x, (3, 5)), F.linear(F.relu(u), m.fc2.weight, m.fc2.bias), atol=1e-5, rtol=1e-5)


# ======================================================================================================== norms
def test_group_norm_defaults_and_caps():
    """``GN``: at most 32 groups by default (66 channels -> 22, the largest divisor not above 32, where 33 would
    give 33), one channel per group allowed by default (6 channels, num_groups=6 -> 6), affine by default."""
    from transvae.models.layers.norm import gn_groups
    assert gn_groups(66) == 22 and gn_groups(66, 33) == 33 and gn_groups(7, 4) == 1
    assert GroupNorm(66).num_groups == 22 and GroupNorm(6, num_groups=6).num_groups == 6
    assert GroupNorm(6, num_groups=6, min_group_channels=2).num_groups == 3
    n = GroupNorm(6, num_groups=3)
    assert n.affine and n.weight is not None and n.bias is not None and n.eps == 1e-6
    with pytest.raises(ValueError, match=r'^GN: min_group_channels must be >= 1, got 0$'):
        GroupNorm(6, min_group_channels=0)


# ============================================================================================ position encodings
def test_sincos_ape_default_theta_dtype_device_and_message():
    """SinCosAPE: theta 10000 by default (pinned by value elsewhere at non-default thetas); the table is added in the
    input's dtype (bf16 in, bf16 out) and built on the input's device (``meta`` stands in for an accelerator) without
    torch's meshgrid indexing warning; embed_dims not divisible by 4 is refused with its message."""
    import warnings

    from transvae.models.layers.position import SinCosAPE
    x = torch.randn(2, 15, 8, generator=gen(12), dtype=torch.float64)
    torch.testing.assert_close(SinCosAPE(8).embed_tokens(x, (3, 5)),
                               SinCosAPE(8, theta=10000.0).embed_tokens(x, (3, 5)), rtol=0, atol=0)
    assert not torch.equal(SinCosAPE(8).embed_tokens(x, (3, 5)), SinCosAPE(8, theta=10001.0).embed_tokens(x, (3, 5)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        y = SinCosAPE(8).embed_tokens(x.to(torch.bfloat16), (3, 5))
    assert y.dtype == torch.bfloat16
    assert SinCosAPE(8).embed_tokens(torch.empty(2, 15, 8, device='meta'), (3, 5)).device.type == 'meta'
    with pytest.raises(ValueError, match=r'^SinCosAPE needs embed_dims divisible by 4, got 6$'):
        SinCosAPE(6)


# ============================================================================================== window attention
def _timm_swin_block(hw, window, shift):
    from timm.models.swin_transformer import SwinTransformerBlock
    return SwinTransformerBlock(dim=8, input_resolution=hw, num_heads=2, window_size=window,
                                shift_size=window // 2 if shift else 0)


@pytest.mark.parametrize('hw', [(5, 12), (12, 5), (8, 8), (16, 24), (9, 8)])
@pytest.mark.parametrize('shift', [False, True])
def test_window_and_shift_match_timm_swin(hw, shift):
    """The effective window and shift per side against timm's SwinTransformerBlock (window 8): a side not larger
    than the window (5, and 8 itself) is one unshifted window; a larger side shifts by half the window when asked."""
    from transvae.models.layers.window_attention import window_and_shift
    ref = _timm_swin_block(hw, 8, shift)
    assert window_and_shift(hw, 8, shift) == (tuple(ref.window_size), tuple(ref.shift_size))


@pytest.mark.parametrize('hw', [(16, 24), (16, 6), (6, 16), (24, 16)])
def test_shifted_window_mask_matches_timm_swin(hw):
    """Which query may see which key in a shifted window (no padding), against timm's attention mask (-100 where
    ours is -inf), shifted along both sides and along one (the other side fits one window)."""
    from transvae.models.layers.window_attention import shifted_window_mask, window_and_shift
    window, shift = window_and_shift(hw, 8, True)
    ref = _timm_swin_block(hw, 8, True).get_attn_mask(device=torch.device('cpu'), dtype=torch.float32)
    mask = shifted_window_mask(hw, hw, window, shift, dtype=torch.float64)
    assert mask is not None and mask.dtype == torch.float64 and mask.shape == ref.shape
    assert torch.equal(torch.isinf(mask), ref != 0) and bool((mask[~torch.isinf(mask)] == 0).all())
    assert shifted_window_mask(hw, hw, window, (0, 0)) is None  # unshifted, unpadded: nothing to mask


def test_shifted_window_mask_is_built_on_the_given_device():
    from transvae.models.layers.window_attention import shifted_window_mask
    mask = shifted_window_mask((16, 12), (13, 12), (8, 6), (4, 0), device=torch.device('meta'))
    assert mask.device.type == 'meta' and mask.shape == (4, 48, 48)


def test_window_partition_and_reverse_round_trip_on_non_square_windows():
    """(B, H, W, C) -> windows -> back, with n = wh * ww (12) different from C (5): each window is a contiguous
    (wh, ww) patch in row-major window order."""
    from transvae.models.layers.window_attention import window_partition, window_reverse
    x = torch.randn(2, 6, 8, 5, generator=gen(13))
    win = window_partition(x, (3, 4))
    assert win.shape == (8, 12, 5)
    torch.testing.assert_close(win[5], x[1, 0:3, 4:8].reshape(12, 5), rtol=0, atol=0)
    torch.testing.assert_close(window_reverse(win, (3, 4), (6, 8)), x, rtol=0, atol=0)


def test_window_attention_defaults_and_bias_table_like_timm():
    """Defaults: head_dim 64, window 8, a QKV bias; the relative-position table has (2W-1)^2 rows like timm's
    WindowAttention (what a Swin checkpoint holds), initialised with std 0.02; the bias is built on the table's
    device without torch's meshgrid indexing warning."""
    import warnings

    from timm.models.swin_transformer import WindowAttention as TimmWindowAttention

    from transvae.models.layers.window_attention import WindowAttention
    torch.manual_seed(0)
    a = WindowAttention(256)
    assert a.head_dim == 64 and a.num_heads == 4 and a.window_size == 8 and a.qkv.bias is not None
    assert a.relative_position_bias_table.shape == TimmWindowAttention(256, 4, window_size=8) \
        .relative_position_bias_table.shape == (225, 4)
    assert 0.017 < float(a.relative_position_bias_table.detach().std()) < 0.023
    assert WindowAttention(16, head_dim=8, qkv_bias=False).qkv.bias is None
    b = WindowAttention(16, head_dim=8, window_size=5).to('meta')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert b.relative_position_bias((3, 5)).device.type == 'meta'


# ================================================================================== RoPE and global attention
def test_rope2d_defaults_float64_frequencies_and_device():
    """RoPE2D: head_dim 64 by default; the frequencies ``theta ** (-4k / head_dim)`` are computed in float64 and
    rounded once (float32 arithmetic differs in the last bit for 3 of 6 frequencies at head_dim 24, theta 100); the
    angles are built on the buffers' device (``meta`` stands in for an accelerator); the message names the rule."""
    from transvae.models.layers.position import RoPE2D
    assert RoPE2D().freqs.shape == (16,) and RoPE2D().head_dim == 64
    want = (100.0 ** (-4.0 * torch.arange(6, dtype=torch.float64) / 24)).float()
    assert torch.equal(RoPE2D(24, theta=100.0).freqs, want)
    assert RoPE2D(24).to('meta').get_angles((3, 5)).device.type == 'meta'
    with pytest.raises(ValueError, match=r'^RoPE2D needs head_dim divisible by 4, got 6$'):
        RoPE2D(6)


def test_global_attention_default_head_dim_and_message():
    from transvae.models.layers.attention import MultiHeadSelfAttention
    a = MultiHeadSelfAttention(192)
    assert a.head_dim == 64 and a.num_heads == 3
    with pytest.raises(ValueError, match=r'^embed_dims=48 is not divisible by head_dim=32$'):
        MultiHeadSelfAttention(48, head_dim=32)


def test_attention_qkv_bias_switch():
    from transvae.models.layers.attention import MultiHeadSelfAttention
    assert MultiHeadSelfAttention(16, head_dim=8).qkv.bias is not None
    assert MultiHeadSelfAttention(16, head_dim=8, qkv_bias=False).qkv.bias is None


def test_window_attention_message_and_low_precision_mask():
    """A bf16 window attention with a shifted-window mask and the relative bias: the additive mask is cast to the
    query's dtype (SDPA refuses a float32 mask on bf16 queries), and the result is the float32 one, rounded."""
    from transvae.models.layers.window_attention import WindowAttention, shifted_window_mask, window_partition
    with pytest.raises(ValueError, match=r'^embed_dims=24 is not divisible by head_dim=16$'):
        WindowAttention(24, head_dim=16)
    a = randomise(WindowAttention(16, head_dim=8, window_size=4), 14)
    x = torch.randn(1, 8, 12, 16, generator=gen(15))
    mask = shifted_window_mask((8, 12), (8, 12), (4, 4), (2, 2))
    win = window_partition(x, (4, 4))
    want = a(win, (4, 4), mask=mask)
    got = a.to(torch.bfloat16)(win.to(torch.bfloat16), (4, 4), mask=mask)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=0.1, rtol=0.05)
    got = a(win.to(torch.bfloat16), (4, 4))  # no mask: the bias alone, cast
    torch.testing.assert_close(got.float(), a.float()(win, (4, 4)), atol=0.1, rtol=0.05)


def test_norm_affine_switches_and_rmsnorm_low_precision():
    """LN / RMSNorm without affine have no weight; RMSNorm casts its float32 weight to a bf16 input's dtype (the
    fused kernel: no dtype-mismatch warning), and the weight still applies."""
    import warnings

    from transvae.models.layers.norm import LayerNorm, RMSNorm
    assert LayerNorm(8, affine=False).weight is None and LayerNorm(8).weight is not None
    assert RMSNorm(8, affine=False).weight is None
    n = randomise(RMSNorm(8, eps=1e-5), 16)
    x = torch.randn(2, 5, 8, generator=gen(17))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        y = n(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    want = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * n.weight.detach()
    torch.testing.assert_close(y.float(), want, atol=0.05, rtol=0.02)


@pytest.mark.parametrize('p', [0, -4, 12])
def test_log2_patch_size_refuses_zero_negative_and_non_powers(p):
    with pytest.raises(ValueError, match=rf'^SeqConvPatchEmbed needs a power-of-two patch_size, got {p}$'):
        SeqConvPatchEmbed(3, 8, p)


def test_patch_size_one_is_a_power_of_two():
    """p = 1 = 2^0: no stride-2 stage at all (the embed is the identity map)."""
    m = SeqConvPatchEmbed(3, 8, 1)
    x = torch.randn(1, 3, 3, 5, generator=gen(18))
    assert len(m.layers) == 0 and torch.equal(m(x), x)
    assert len(SeqConvUpHead(8, 3, 1).layers) == 0


def test_learnable_ape_defaults_init_and_dtype():
    """LearnableAPE: a 16 x 16 table by default, initialised with std 0.02; added in the input's dtype."""
    from transvae.models.layers.position import LearnableAPE
    torch.manual_seed(0)
    pe = LearnableAPE(32)
    table = pe.pos_embed.detach()
    assert table.numel() == 16 * 16 * 32 and 0.017 < float(table.std()) < 0.023
    x = torch.randn(2, 12, 32, generator=gen(19)).to(torch.bfloat16)
    assert pe.embed_tokens(x, (3, 4)).dtype == torch.bfloat16


def _hand_avg(x, out):
    u = F.pixel_unshuffle(x, 2)
    b, c, h, w = u.shape
    return u.reshape(b, out, c // out, h, w).mean(2)


@pytest.mark.parametrize('c,out,hw', [(6, 8, (8, 10)), (5, 4, (6, 10)), (8, 4, (6, 10))])
def test_dc_average_shortcut_general_and_fast_paths(c, out, hw):
    """Channel counts where only the general path is right (6 -> 8 on an 8-row map, 5 -> 4) and the pooling fast
    path (8 -> 4), against unshuffle + consecutive-group mean."""
    from transvae.models.layers import space_to_channel_average
    x = torch.randn(2, c, *hw, generator=gen(20), dtype=torch.float64)
    torch.testing.assert_close(space_to_channel_average(x, out), _hand_avg(x, out), atol=1e-12, rtol=0)


def test_dc_shortcut_messages_and_uneven_duplication():
    """4 -> 5 channels (out % C == 1) goes the shuffle path: 20 sub-pixel channels, each input channel 5 times."""
    from transvae.models.layers import channel_to_space_duplicate, space_to_channel_average
    x = torch.randn(2, 4, 3, 5, generator=gen(21), dtype=torch.float64)
    torch.testing.assert_close(channel_to_space_duplicate(x, 5), F.pixel_shuffle(x.repeat_interleave(5, 1), 2),
                               atol=0, rtol=0)
    with pytest.raises(ValueError, match=r'^DC averaging shortcut: 6 channels cannot be averaged into 4$'):
        space_to_channel_average(torch.zeros(1, 6, 2, 2), 4, factor=1)
    with pytest.raises(ValueError, match=r'^DC duplicating shortcut: 3 channels cannot be duplicated into 2$'):
        channel_to_space_duplicate(torch.zeros(1, 3, 2, 2), 2, factor=1)


def test_sampler_defaults_and_messages():
    from transvae.models.layers.sampling import ConvPixelUnshuffleDown, PatchExpanding
    assert PatchExpanding(8).out_channels == 4 and PatchExpanding(8).expand.out_features == 16
    assert PatchExpanding(8).expand.bias is None
    with pytest.raises(ValueError, match=r'^ConvPixelUnshuffleDown needs out_channels divisible by 4, got 6$'):
        ConvPixelUnshuffleDown(4, 6)


def test_seqconv_embed_refuses_a_channel_floor_below_one():
    with pytest.raises(ValueError, match=r'^SeqConvPatchEmbed: min_channels must be >= 1, got 0$'):
        SeqConvPatchEmbed(3, 8, 4, min_channels=0)


# ======================================================= round 2 (mutation run of ba452f6): the off-fast-path code
@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float64])
def test_rmsnorm_outside_the_cpu_float32_path_equals_torch_rmsnorm(affine, dtype):
    """bf16 / float64 inputs take the ``F.rms_norm`` branch: equal to ``torch.nn.RMSNorm`` in that dtype, with a
    large eps (0.25) on small inputs so that the eps shows, and without a weight (affine off)."""
    from transvae.models.layers.norm import RMSNorm
    ours = RMSNorm(6, eps=0.25, affine=affine)
    ref = nn.RMSNorm(6, eps=0.25, elementwise_affine=affine, dtype=dtype)
    if affine:
        ours = randomise(ours, 30)
        with torch.no_grad():
            ref.weight.copy_(ours.weight)
    x = (0.3 * torch.randn(2, 3, 6, generator=gen(31))).to(dtype)
    y = ours(x)
    assert y.dtype == dtype
    assert torch.equal(y, ref(x))
    rms = x.double().pow(2).mean(-1, keepdim=True)
    want = x.double() * torch.rsqrt(rms + 0.25) * (ours.weight.detach().double() if affine else 1.0)
    torch.testing.assert_close(y.double(), want, atol=1e-2 if dtype == torch.bfloat16 else 1e-12, rtol=1e-2)


@pytest.mark.parametrize('channels', [4, 6])
def test_dc_upsample_under_autograd_keeps_the_two_path_gradients(channels):
    """With gradients on, DCUpsample runs its two paths (conv of the nearest up-sampling plus the duplicating
    shortcut, each up-sampling its own copy): the input's gradient is bit for bit that of those two paths written
    with torch ops (the single shared up-sampling of the inference path would sum the two gradients in another
    order)."""
    from transvae.models.layers.sampling import build_sampler
    torch.manual_seed(0)
    up = build_sampler(dict(type='DCUpsample'), channels, channels)
    x = torch.randn(2, channels, 3, 5, generator=gen(32), requires_grad=True)
    y = up(x)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref = up.conv(F.interpolate(x_ref, scale_factor=2.0, mode='nearest')) + F.interpolate(
        x_ref, scale_factor=2.0, mode='nearest')
    assert torch.equal(y, y_ref)
    g = torch.randn(y.shape, generator=gen(33))
    (gx,) = torch.autograd.grad(y, [x], g)
    (gx_ref,) = torch.autograd.grad(y_ref, [x_ref], g)
    assert torch.equal(gx, gx_ref)
