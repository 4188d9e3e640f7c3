"""TransVAE hybrid encoder / decoder, blocks and layers: shapes, RoPE, DC shortcuts, posterior, parameter counts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transvae.models.distributions import DiagonalGaussian
from transvae.models.layers import (RoPE2D, apply_rope, channel_to_space_duplicate, space_to_channel_average)
from transvae.registry import MODELS

TINY = dict(widths=[16, 16, 32, 64], depths=[1, 1, 1, 1], latent_channels=8, head_dim=16)


def build_vae(**arch) -> torch.nn.Module:
    cfg = dict(type='VAE', arch={**TINY, **arch}, encoder=dict(type='TransVAEEncoder'),
               decoder=dict(type='TransVAEDecoder'), rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))
    return MODELS.build(cfg)


@pytest.mark.parametrize('size', [(32, 32), (40, 24), (37, 53), (8, 8), (5, 70)])
def test_shapes_any_size(size):
    torch.manual_seed(0)
    vae = build_vae().eval()
    x = torch.rand(2, 3, *size) * 2 - 1
    post = vae.encode(x)
    f = vae.downsample_factor
    assert f == 8
    assert post.mean.shape == (2, 8, -(-size[0] // f), -(-size[1] // f))
    assert vae(x).shape == x.shape
    assert vae.decode(post.mode()).shape == (2, 3, post.mean.shape[2] * f, post.mean.shape[3] * f)


def test_padding_is_cropped_consistently():
    """A non-multiple input reconstructs the same pixels as the explicitly reflect-padded input, cropped."""
    torch.manual_seed(0)
    vae = build_vae().eval()
    x = torch.rand(1, 3, 20, 27) * 2 - 1
    padded = F.pad(x, (0, 5, 0, 4), mode='reflect')
    with torch.no_grad():
        assert torch.allclose(vae(x), vae(padded)[..., :20, :27], atol=1e-5)


def test_rope_relative_property():
    """q·k logits after RoPE depend only on the position difference: shifting both grids changes nothing."""
    torch.manual_seed(0)
    hd = 16
    rope = RoPE2D(head_dim=hd)
    big = rope.get_embed((12, 12)).view(12, 12, hd // 2)
    q, k = torch.randn(1, 1, 1, hd), torch.randn(1, 1, 1, hd)

    def logit(pq, pk):
        qa = apply_rope(q, big[pq].view(1, hd // 2))
        ka = apply_rope(k, big[pk].view(1, hd // 2))
        return (qa * ka).sum()

    ref = logit((1, 2), (4, 7))
    for dy, dx in [(0, 0), (3, 1), (5, 4), (7, 0)]:
        assert torch.allclose(ref, logit((1 + dy, 2 + dx), (4 + dy, 7 + dx)), atol=1e-4)
    assert not torch.allclose(ref, logit((1, 2), (5, 7)), atol=1e-3)


def test_rope_is_a_rotation_and_uses_integer_positions():
    rope = RoPE2D(head_dim=16)
    x = torch.randn(2, 3, 20, 16)
    cis = rope.get_embed((4, 5))
    assert cis.shape == (20, 8) and cis.is_complex()
    y = apply_rope(x, cis)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    # the same as the real form x * cos + rotate_half(x) * sin with each angle repeated for its pair
    ang = rope.get_angles((4, 5)).repeat_interleave(2, dim=-1)
    pairs = x.unflatten(-1, (-1, 2))
    rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    assert torch.allclose(y, x * ang.cos() + rot * ang.sin(), atol=1e-5)
    # row index rotates the first half of the pairs, column index the second half
    assert torch.equal(rope.get_angles((4, 5)).view(4, 5, 8)[2, 3, :4], 2 * rope.freqs)
    assert torch.equal(rope.get_angles((4, 5)).view(4, 5, 8)[2, 3, 4:], 3 * rope.freqs)
    # integer grid: a bigger grid contains the smaller one unchanged (extrapolation, not interpolation)
    assert torch.allclose(rope.get_embed((8, 8)).view(8, 8, 8)[:4, :5].reshape(20, 8), cis)
    assert 'freqs' not in rope.state_dict()


def test_dc_shortcuts():
    x = torch.randn(2, 8, 6, 4)
    down = space_to_channel_average(x, 16)  # 4*8 = 32 channels averaged in pairs
    assert down.shape == (2, 16, 3, 2)
    assert torch.allclose(down, F.pixel_unshuffle(x, 2).view(2, 16, 2, 3, 2).mean(2))
    up = channel_to_space_duplicate(x, 4)  # 4*4 = 16 = 8 * 2 duplicates
    assert up.shape == (2, 4, 12, 8)
    assert torch.allclose(up, F.pixel_shuffle(x.repeat_interleave(2, 1), 2))
    # the round trip of a constant map is exact: the shortcuts preserve information on smooth content
    c = torch.ones(1, 8, 4, 4)
    assert torch.allclose(channel_to_space_duplicate(space_to_channel_average(c, 16), 8), c)
    with pytest.raises(ValueError, match='cannot be averaged'):
        space_to_channel_average(torch.randn(1, 3, 4, 4), 5)


@pytest.mark.parametrize('c,out,f', [(8, 8, 2), (16, 8, 2), (8, 16, 2), (8, 32, 2), (8, 2, 2), (4, 4, 4), (4, 64, 4),
                                     (12, 6, 1)])
def test_dc_shortcut_fast_paths_match_definition(c, out, f):
    """The pooling / nearest-upsampling fast paths equal unshuffle + group mean and repeat + shuffle exactly."""
    x = torch.randn(2, c, 4 * f, 3 * f)
    b, _, h, w = x.shape
    un = F.pixel_unshuffle(x, f) if f > 1 else x
    ref_down = un.view(b, out, un.shape[1] // out, h // f, w // f).mean(2)
    torch.testing.assert_close(space_to_channel_average(x, out, f), ref_down, rtol=0, atol=1e-6)
    y = torch.randn(2, out, 5, 3)
    if (c * f * f) % out == 0:
        dup = y.repeat_interleave(c * f * f // out, 1)
        ref_up = F.pixel_shuffle(dup, f) if f > 1 else dup
        torch.testing.assert_close(channel_to_space_duplicate(y, c, f), ref_up, rtol=0, atol=0)


@pytest.mark.parametrize('down,up', [('DCDownsample', 'DCUpsample'), ('ConvPixelUnshuffleDown', 'InterpConvUp'),
                                     ('StridedConvDown', 'InterpConvUp')])
def test_samplers(down, up):
    d = MODELS.build(dict(type=down, in_channels=16, out_channels=32))
    u = MODELS.build(dict(type=up, in_channels=32, out_channels=16))
    x = torch.randn(2, 16, 8, 6)
    assert d(x).shape == (2, 32, 4, 3)
    assert u(d(x)).shape == x.shape


def test_dc_down_adds_shortcut():
    d = MODELS.build(dict(type='DCDownsample', in_channels=16, out_channels=32))
    torch.nn.init.zeros_(d.conv.weight)
    torch.nn.init.zeros_(d.conv.bias)
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(d(x), space_to_channel_average(x, 32))


@pytest.mark.parametrize('ffn', ['PointwiseFFN', 'DWConvFFN', 'FullConvFFN'])
@pytest.mark.parametrize('qk_norm', [None, dict(type='RMSNorm'), dict(type='LN')])
def test_block_variants(ffn, qk_norm):
    blk = MODELS.build(dict(type='TransVAEBlock', embed_dims=32, head_dim=16, ffn_cfg=dict(type=ffn),
                            attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=qk_norm)))
    x = torch.randn(2, 6 * 5, 32)
    y = blk(x, (6, 5), RoPE2D(16).qk_transform((6, 5)))
    assert y.shape == x.shape
    y.sum().backward()
    assert all(p.grad is not None for p in blk.parameters())


def test_fullconv_block_is_15_d2():
    d = 64
    blk = MODELS.build(dict(type='TransVAEBlock', embed_dims=d))
    weights = sum(p.numel() for n, p in blk.named_parameters() if p.dim() > 1)
    assert weights == 15 * d * d


def test_diagonal_gaussian():
    torch.manual_seed(0)
    mean, logvar = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    post = DiagonalGaussian(torch.cat([mean, logvar], 1))
    assert torch.equal(post.mode(), mean)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mean, (0.5 * logvar).exp()),
                                            torch.distributions.Normal(0, 1)).sum((1, 2, 3))
    assert torch.allclose(post.kl(), ref, atol=1e-5)
    samples = torch.stack([post.sample() for _ in range(4000)])
    assert torch.allclose(samples.mean(0), mean, atol=0.15)
    assert torch.allclose(samples.std(0), (0.5 * logvar).exp(), rtol=0.1, atol=0.05)
    # clamping as in LDM
    assert DiagonalGaussian(torch.cat([mean, torch.full_like(mean, 100.)], 1)).logvar.max() == 20
    det = DiagonalGaussian(torch.cat([mean, logvar], 1), deterministic=True)
    assert torch.equal(det.sample(), mean) and torch.all(det.kl() == 0)
    with pytest.raises(ValueError):
        DiagonalGaussian(torch.randn(1, 3, 2, 2))


def test_loss_and_gradients():
    torch.manual_seed(0)
    vae = build_vae()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    losses = vae.loss(x)
    assert {'loss_nll', 'loss_kl', 'l1', 'logvar', 'kl'} <= set(losses)
    assert not any('loss' in k for k in ('l1', 'logvar', 'kl'))
    (losses['loss_nll'] + losses['loss_kl']).backward()
    assert vae.rec_loss.logvar.grad is not None
    assert vae.encoder.conv_in.weight.grad is not None


def test_predict_outputs_and_latent_stats_in_checkpoint():
    vae = build_vae().eval()
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    out = vae.predict(x, [dict(img_path='a.png'), dict(img_path='b.png')])
    assert out[0]['img_path'] == 'a.png' and out[0]['pred_img'].shape == (3, 16, 24)
    assert 0 <= out[0]['pred_img'].min() and out[0]['pred_img'].max() <= 1
    vae.set_latent_stats(torch.arange(8.), torch.full((8,), 2.))
    sd = vae.state_dict()
    assert torch.equal(sd['latent_mean'], torch.arange(8.))
    z = torch.randn(1, 8, 2, 2)
    assert torch.allclose(vae.denormalize_latent(vae.normalize_latent(z)), z, atol=1e-6)


def test_arch_keys_reach_both_sides():
    vae = build_vae(block_cfg=dict(type='TransVAEBlock', ffn_cfg=dict(type='DWConvFFN')))
    assert type(vae.encoder.stages[3].blocks[0].ffn).__name__ == 'DWConvFFN'
    assert type(vae.decoder.stages[3].blocks[0].ffn).__name__ == 'DWConvFFN'


def test_unknown_type_names_registry_and_suggests():
    with pytest.raises(KeyError, match=r"transvae::model registry.*Did you mean: FullConvFFN"):
        MODELS.build(dict(type='FullConvFNN', embed_dims=8))


def test_predict_with_tiling_matches_whole_image_when_one_tile_covers_it():
    torch.manual_seed(0)
    vae = build_vae().eval()
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    whole = vae.predict(x)[0]['pred_img']
    vae.enable_tiling(64)
    assert torch.allclose(vae.predict(x)[0]['pred_img'], whole, atol=1e-5)
    vae.enable_tiling(16, overlap=8, mode='blend')
    tiled = vae.predict(x)[0]['pred_img']
    assert tiled.shape == whole.shape and 0 <= tiled.min() and tiled.max() <= 1
