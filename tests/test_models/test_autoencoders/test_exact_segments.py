"""Exact tiling derived from a backbone's segments: a backbone made only of segments is tiled exactly with no plan of
its own; the default cut; the plan's two parts compose to ``forward`` bit for bit; what cannot be tiled says so."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from transvae.models.autoencoders.exact_plans import exact_cut, exact_plan
from transvae.models.autoencoders.exact_tiling import ExactTilingUnsupported
from transvae.models.backbones.base import DecoderBase, EncoderBase, Segment
from transvae.models.blocks.attn_block import AttnBlock
from transvae.models.blocks.resblock import ResBlock
from transvae.models.layers.sampling import DCDownsample, DCUpsample
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')


class ToyEncoder(EncoderBase):
    """f = 4, d = 4: conv, ResBlock, DC down, ResBlock, DC down, a global AttnBlock, a head with a channel term."""

    def __init__(self) -> None:
        super().__init__()
        self.in_channels, self.latent_channels, self.downsample_factor = 3, 4, 4
        self.conv_in = nn.Conv2d(3, 8, 3, padding=1)
        self.res0, self.down0 = ResBlock(8, norm_cfg=dict(type='GN', num_groups=4)), DCDownsample(8, 16)
        self.res1, self.down1 = ResBlock(16, norm_cfg=dict(type='GN', num_groups=4)), DCDownsample(16, 16)
        self.attn = AttnBlock(16, norm_cfg=dict(type='GN', num_groups=4))
        self.conv_out = nn.Conv2d(16, 8, 3, padding=1)

    def _head(self, h: Tensor) -> Tensor:
        return self.conv_out(h) + h.mean(1, keepdim=True)  # a parameter-free channel term, as the DC shortcut

    def segments(self) -> list[Segment]:
        return [Segment.of('stem', self.conv_in), Segment.of('res0', self.res0),
                Segment.of('down0', self.down0, resamples=True), Segment.of('res1', self.res1),
                Segment.of('down1', self.down1, resamples=True), Segment.of('attn', self.attn),
                Segment('head', self._head, (self.conv_out,))]


class ToyDecoder(DecoderBase):
    """The mirror: conv, global AttnBlock, DC up, ResBlock, DC up, ResBlock, GN -> SiLU -> conv."""

    def __init__(self) -> None:
        super().__init__()
        self.latent_channels, self.upsample_factor = 4, 4
        self.conv_in = nn.Conv2d(4, 16, 3, padding=1)
        self.attn = AttnBlock(16, norm_cfg=dict(type='GN', num_groups=4))
        self.up1, self.res1 = DCUpsample(16, 16), ResBlock(16, norm_cfg=dict(type='GN', num_groups=4))
        self.up0, self.res0 = DCUpsample(16, 8), ResBlock(8, norm_cfg=dict(type='GN', num_groups=4))
        self.norm_out, self.act_out, self.conv_out = nn.GroupNorm(4, 8), nn.SiLU(), nn.Conv2d(8, 3, 3, padding=1)

    def segments(self) -> list[Segment]:
        return [Segment.of('stem', self.conv_in), Segment.of('attn', self.attn),
                Segment.of('up1', self.up1, resamples=True), Segment.of('res1', self.res1),
                Segment.of('up0', self.up0, resamples=True), Segment.of('res0', self.res0),
                Segment.of('head', self.norm_out, self.act_out, self.conv_out)]


class OwnForward(ToyEncoder):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)


def _vae(**arch_over) -> nn.Module:
    torch.manual_seed(0)
    arch = dict(widths=[16, 16, 32, 32], depths=[1, 1, 1, 1], latent_channels=4, head_dim=16, **arch_over)
    return MODELS.build(dict(type='VAE', arch=arch, encoder=dict(type='TransVAEEncoder'),
                             decoder=dict(type='TransVAEDecoder'),
                             rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))).eval()


def _names(backbone: nn.Module, tiled: bool = True) -> list[str]:
    segs, plan = backbone.segments(), exact_plan(backbone)
    part = segs[:plan.cut] if plan.is_encoder == tiled else segs[plan.cut:]
    return [s.name for s in part]


def test_backbone_made_of_segments_is_tiled_exactly_without_a_plan():
    vae = _vae()
    torch.manual_seed(0)
    vae.encoder, vae.decoder = ToyEncoder().eval(), ToyDecoder().eval()
    assert _names(vae.encoder) == ['stem', 'res0', 'down0', 'res1', 'down1']  # up to the global attention
    assert _names(vae.decoder) == ['up1', 'res1', 'up0', 'res0', 'head']
    x = torch.rand(2, 3, 38, 45, generator=torch.Generator().manual_seed(1)) * 2 - 1  # padded to 40 x 48
    with torch.no_grad():
        whole = vae.encode(x).mean
        z = torch.randn(2, 4, 10, 12, generator=torch.Generator().manual_seed(2))
        whole_img = vae.decode(z)
        for tile in (12, 20):  # 12 divides neither side; 20 only the height
            torch.testing.assert_close(vae.tiled_encode(x, tile=tile, mode='exact').mean, whole, atol=1e-5, rtol=0)
            torch.testing.assert_close(vae.tiled_decode(z, tile=tile, mode='exact'), whole_img, atol=1e-5, rtol=0)


@pytest.mark.parametrize('arch', [dict(), dict(num_cnn_stages=0), dict(num_cnn_stages=4)])
def test_plan_parts_compose_to_forward(arch):
    """Bit for bit, for every cut the default rule gives (no CNN stage, two, all of them)."""
    vae = _vae(**arch)
    x, z = torch.rand(1, 3, 32, 40) * 2 - 1, torch.randn(1, 4, 4, 5)
    with torch.no_grad():
        enc, dec = exact_plan(vae.encoder), exact_plan(vae.decoder)
        assert torch.equal(enc.whole(enc.tiled.fn(x)), vae.encoder(x))
        assert torch.equal(dec.tiled.fn(dec.whole(z)), vae.decoder(z))


def test_default_cut_ends_at_the_lowest_resampling():
    """Segments at the tiled part's lowest resolution run whole (each GroupNorm there would cost a sweep)."""
    torch.manual_seed(0)
    arch = dict(base_channels=8, channel_mults=[1, 2, 2], num_res_blocks=1, latent_channels=4, attn_levels=[],
                mid_attn=False, norm_cfg=dict(type='GN', num_groups=4))
    enc, dec = MODELS.build(dict(type='CNNEncoder', **arch)), MODELS.build(dict(type='CNNDecoder', **arch))
    assert _names(enc, tiled=False) == ['levels.2', 'mid', 'head']
    assert _names(dec, tiled=False) == ['stem', 'mid', 'levels.0']
    assert exact_cut(enc) == exact_plan(enc, cut=exact_cut(enc)).cut == 5
    with pytest.raises(ValueError, match='cut 0'):
        exact_plan(enc, cut=0)


def test_what_cannot_be_tiled_exactly_says_so():
    with pytest.raises(ExactTilingUnsupported, match='forward of its own'):
        exact_plan(OwnForward())
    torch.manual_seed(0)
    swin = dict(widths=[16, 32], depths=[1, 1], latent_channels=4, head_dim=16, window_size=4)
    for cfg in (dict(type='SwinEncoder', **swin), dict(type='SwinDecoder', **swin)):
        with pytest.raises(ExactTilingUnsupported, match="is not local .*mode='blend'"):
            exact_cut(MODELS.build(cfg))


def test_deep_copy_tiles_with_its_own_weights():
    """The cached plan holds the backbone it was cut from: a deep copy (e.g. an EMA model) must not reuse it."""
    vae = _vae()
    x = torch.rand(1, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        vae.tiled_encode(x, tile=16, mode='exact')  # fills the plan cache, which deepcopy copies
        other = copy.deepcopy(vae)
        other.encoder.conv_in.weight.mul_(2)
        torch.testing.assert_close(other.tiled_encode(x, tile=16, mode='exact').mean, other.encode(x).mean,
                                   atol=1e-5, rtol=0)
