"""ViT-VAE: shapes for every patch-embed / head / position-encoding slot, APE interpolation, the VAE wrapper."""
from __future__ import annotations

import pytest
import torch

from transvae.models.layers import LearnableAPE
from transvae.registry import MODELS

D, DEPTH, LAT, P = 32, 2, 4, 8  # tiny: 2 heads of 16, f = 8


pytestmark = pytest.mark.usefixtures('one_thread')


def vit(kind: str, **kw):
    cfg = dict(type=f'ViT{kind}', embed_dims=D, depth=DEPTH, latent_channels=LAT, patch_size=P, head_dim=16,
               img_size=32)
    cfg.update(kw)
    return MODELS.build(cfg)


PES = [None, dict(type='RoPE2D'), dict(type='NoPE')]


@pytest.mark.parametrize('pe_cfg', PES, ids=['ape', 'rope', 'none'])
@pytest.mark.parametrize('embed', ['ConvPatchEmbed', 'SeqConvPatchEmbed'])
@pytest.mark.parametrize('hw', [(32, 32), (24, 40)])
def test_encoder_shapes(pe_cfg, embed, hw):
    enc = vit('Encoder', pe_cfg=pe_cfg, patch_embed_cfg=dict(type=embed))
    assert enc.downsample_factor == P and enc.latent_channels == LAT
    y = enc(torch.randn(2, 3, *hw))
    assert y.shape == (2, 2 * LAT, hw[0] // P, hw[1] // P)
    assert isinstance(enc.get_last_layer(), torch.nn.Parameter)


@pytest.mark.parametrize('pe_cfg', PES, ids=['ape', 'rope', 'none'])
@pytest.mark.parametrize('head', ['PixelShuffleHead', 'SeqConvUpHead'])
@pytest.mark.parametrize('hw', [(4, 4), (3, 5), (1, 1)])
def test_decoder_shapes_and_last_layer_grad(pe_cfg, head, hw):
    dec = vit('Decoder', pe_cfg=pe_cfg, head_cfg=dict(type=head))
    y = dec(torch.randn(1, LAT, *hw))
    assert y.shape == (1, 3, hw[0] * P, hw[1] * P)
    y.square().mean().backward()
    assert dec.get_last_layer().grad is not None


def test_paper_sizes_single_stage():
    """ViT-VAE-T: 8 blocks of width 512 at stride 16, APE grid 16 (= 256 / 16)."""
    with torch.device('meta'):
        enc = MODELS.build(dict(type='ViTEncoder', embed_dims=512, depth=8, latent_channels=32))
    assert len(enc.stage.blocks) == 8 and enc.downsample_factor == 16
    assert isinstance(enc.stage.pe, LearnableAPE) and enc.stage.pe.grid == (16, 16)


def test_seqconv_channel_ramp():
    pe = MODELS.build(dict(type='SeqConvPatchEmbed', in_channels=3, embed_dims=64, patch_size=16))
    convs = [m for m in pe.layers if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]
    assert all(c.stride == (2, 2) and c.kernel_size == (3, 3) for c in convs)
    head = MODELS.build(dict(type='SeqConvUpHead', in_channels=64, out_channels=3, patch_size=16))
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 16, 8, 8, 3]
    floored = MODELS.build(dict(type='SeqConvPatchEmbed', embed_dims=64, patch_size=16, min_channels=32))
    assert [m.out_channels for m in floored.layers if isinstance(m, torch.nn.Conv2d)] == [32, 32, 32, 64]
    capped = MODELS.build(dict(type='SeqConvPatchEmbed', embed_dims=64, patch_size=4, min_channels=256))
    assert [m.out_channels for m in capped.layers if isinstance(m, torch.nn.Conv2d)] == [64, 64]
    assert capped(torch.zeros(1, 3, 8, 8)).shape == (1, 64, 2, 2)
    with pytest.raises(ValueError, match='min_channels'):
        MODELS.build(dict(type='SeqConvPatchEmbed', embed_dims=64, patch_size=16, min_channels=0))


def test_ape_interpolation():
    ape = LearnableAPE(embed_dims=8, grid_size=4)
    x = torch.zeros(1, 16, 8)
    # the training grid uses the table as is
    torch.testing.assert_close(ape.embed_tokens(x, (4, 4)), ape.pos_embed)
    # other grids: bicubic interpolation of the table, any aspect ratio
    y = ape.embed_tokens(torch.zeros(2, 6 * 10, 8), (6, 10))
    assert y.shape == (2, 60, 8)
    with torch.no_grad():
        ape.pos_embed.fill_(0.5)  # a constant table interpolates to the same constant
    torch.testing.assert_close(ape.embed_tokens(torch.zeros(1, 6, 8), (2, 3)), torch.full((1, 6, 8), 0.5))
    # the encoder runs at a resolution other than img_size and the APE gets a gradient
    enc = vit('Encoder')  # grid 32 / 8 = 4
    enc(torch.randn(1, 3, 48, 64)).sum().backward()
    assert enc.stage.pe.grid == (4, 4) and enc.stage.pe.pos_embed.grad.abs().sum() > 0


def test_transvae_block_in_vit():
    """``block_cfg`` takes the TransVAE block (RMSNorm Q/K, FullConv FFN) in the single-stage model."""
    enc = vit('Encoder', block_cfg=dict(type='TransVAEBlock'), pe_cfg=dict(type='RoPE2D'))
    assert type(enc.stage.blocks[0]).__name__ == 'TransVAEBlock'
    assert enc(torch.randn(1, 3, 16, 24)).shape == (1, 2 * LAT, 2, 3)


def test_vae_with_shared_arch():
    """``VAE.arch`` feeds both sides; a non-multiple input is padded by the VAE and cropped back."""
    vae = MODELS.build(
        dict(type='VAE',
             arch=dict(embed_dims=D, depth=1, latent_channels=LAT, patch_size=P, head_dim=16, img_size=32,
                       pe_cfg=dict(type='RoPE2D')),
             encoder=dict(type='ViTEncoder', patch_embed_cfg=dict(type='SeqConvPatchEmbed')),
             decoder=dict(type='ViTDecoder', head_cfg=dict(type='SeqConvUpHead')),
             rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None)))
    x = torch.rand(1, 3, 20, 28) * 2 - 1
    assert vae.encode(x).mean.shape == (1, LAT, 3, 4)
    assert vae.reconstruct(x).shape == x.shape
