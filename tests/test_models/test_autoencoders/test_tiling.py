"""Tiling as a VAE capability: the exact mode equals the whole image, the blend mode's geometry, the protocol, memory."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from transvae.models.autoencoders.blend_tiling import blend_weights_1d, tile_starts
from transvae.models.autoencoders.exact_tiling import ExactTilingUnsupported, owned_tiles, run_exact
from transvae.models.autoencoders.tiling import ExactTiler, TilingConfig, choose_tile
from transvae.registry import MODELS
from transvae.utils.memory import measure_peak_bytes

pytestmark = pytest.mark.usefixtures('one_thread')

TRANSVAE = dict(arch=dict(widths=[16, 16, 32, 32], depths=[1, 1, 1, 1], latent_channels=4, head_dim=16),
                encoder=dict(type='TransVAEEncoder'), decoder=dict(type='TransVAEDecoder'))
# CNN-VAE with a global AttnBlock in the mid-block and at the lowest level (LDM's layout), StridedConvDown samplers
CNN_ATTN = dict(arch=dict(base_channels=16, channel_mults=[1, 1, 2, 2], num_res_blocks=1, latent_channels=4,
                          attn_levels=[3], mid_attn=True),
                encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'))
CNN_PLAIN = dict(arch=dict(base_channels=16, channel_mults=[1, 1, 2, 2], num_res_blocks=1, latent_channels=4,
                           attn_levels=[], mid_attn=False),
                 encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'))
ARCHS = dict(transvae=TRANSVAE, cnn_attn=CNN_ATTN, cnn_plain=CNN_PLAIN)
# tile sizes in pixels; 24 and 40 do not divide the 72 x 88 (padded) image. The CNN-VAEs tile everything below their
# attention (17 GroupNorms in the plain decoder: 18 sweeps), so they skip the smallest tile to stay fast.
CASES = [('transvae', 16), ('transvae', 24), ('transvae', 40), ('cnn_attn', 24), ('cnn_attn', 40),
         ('cnn_plain', 24), ('cnn_plain', 40)]


def build(arch: dict) -> nn.Module:
    torch.manual_seed(0)
    cfg = dict(type='VAE', rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None), **arch)
    return MODELS.build(cfg).eval()


def image(b: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
    smooth = torch.stack([torch.sin(5 * yy + 1), torch.cos(7 * xx), torch.sin(3 * (xx + yy))])
    return (0.6 * smooth + 0.3 * torch.rand(b, 3, h, w, generator=g)).clamp(-1, 1)


# ---------------------------------------------------------------------------------------------------------------- exact
@pytest.mark.parametrize('arch,tile', CASES)
def test_exact_encode_equals_whole(arch, tile):
    vae = build(ARCHS[arch])
    x = image(2, 70, 85)  # padded to 72 x 88 like encode() does
    with torch.no_grad():
        whole = vae.encode(x)
        tiled = vae.tiled_encode(x, tile=tile, mode='exact')
        blended = vae.tiled_encode(x, tile=32, mode='blend')
    torch.testing.assert_close(tiled.mean, whole.mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(tiled.logvar, whole.logvar, atol=1e-5, rtol=0)
    assert (blended.mean - whole.mean).abs().max() > 1e-3  # the test can see a per-tile difference


@pytest.mark.parametrize('arch,tile', CASES)
def test_exact_decode_equals_whole(arch, tile):
    vae = build(ARCHS[arch])
    z = torch.randn(2, 4, 9, 11, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = vae.decode(z, out_size=(70, 85))
        tiled = vae.tiled_decode(z, out_size=(70, 85), tile=tile, mode='exact')
    assert tiled.shape == whole.shape == (2, 3, 70, 85)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_exact_uses_whole_map_groupnorm_statistics():
    """Per-tile GroupNorm statistics (everything else exact) would be visibly wrong: the executor must not use them."""
    vae = build(TRANSVAE)
    seg = ExactTiler.plan(vae, 'decode').tiled
    h = torch.randn(1, seg.in_channels, 12, 16)
    with torch.no_grad():
        whole = seg.fn(h)
        exact = run_exact(seg, h, 4)
        per_tile = torch.zeros_like(whole)
        for y0, y1, x0, x1 in owned_tiles(12, 16, 4):  # halo-ed tiles, but each with its own GroupNorm stats
            cy0, cx0 = max(0, y0 - seg.halo), max(0, x0 - seg.halo)
            out = seg.fn(h[..., cy0:y1 + seg.halo, cx0:x1 + seg.halo])
            s = int(seg.scale)
            per_tile[..., y0 * s:y1 * s, x0 * s:x1 * s] = \
                out[..., (y0 - cy0) * s:(y1 - cy0) * s, (x0 - cx0) * s:(x1 - cx0) * s]
    assert seg.gn_count == 5 and seg.scale == 4 and seg.halo >= 3
    torch.testing.assert_close(exact, whole, atol=1e-5, rtol=0)
    assert (per_tile - whole).abs().max() > 1e-2


def test_exact_rejects_unsupported_architecture_and_blend_still_works():
    vae = build(dict(arch=dict(embed_dims=32, depth=1, latent_channels=4, patch_size=8, head_dim=16),
                     encoder=dict(type='ViTEncoder'), decoder=dict(type='ViTDecoder')))
    x = image(1, 48, 48)
    with pytest.raises(ExactTilingUnsupported, match="mode='blend'"):
        vae.tiled_encode(x, tile=16)
    assert vae.tiled_encode(x, tile=16, mode='blend').mean.shape == (1, 4, 6, 6)


def test_exact_tile_alignment_and_config_errors():
    vae = build(TRANSVAE)
    seg = ExactTiler.plan(vae, 'encode').tiled
    with pytest.raises(ValueError, match='multiple of 4'):
        run_exact(seg, torch.zeros(1, 3, 32, 32), 6)
    with pytest.raises(ValueError, match='tiling mode'):
        vae.enable_tiling(64, mode='seamless')
    with pytest.raises(ValueError, match='positive int'):
        vae.enable_tiling(0)
    # an explicit tile is rounded up to the mode's alignment
    assert choose_tile(vae, 'decode', (1, 3, 96, 96), TilingConfig(tile=30)) == 32
    assert choose_tile(vae, 'decode', (1, 3, 96, 96), TilingConfig(tile=30, mode='blend')) == 32
    assert choose_tile(vae, 'decode', (1, 3, 96, 96), TilingConfig(tile=96)) is None


# ------------------------------------------------------------------------------------------------------------- protocol
def test_enable_tiling_routes_encode_decode_and_predict():
    vae = build(TRANSVAE)
    x = image(1, 64, 80)
    with torch.no_grad():
        ref = vae.reconstruct(x)
        vae.enable_tiling(tile=16, mode='blend')
        blended = vae.reconstruct(x)
        vae.enable_tiling(tile=16)
        exact = vae.reconstruct(x)
        pred = vae.predict(x)[0]['pred_img']
        vae.train()
        assert torch.equal(vae.reconstruct(x), ref)  # training never tiles
        vae.eval()
        vae.disable_tiling()
        assert torch.equal(vae.reconstruct(x), ref)
    assert (blended - ref).abs().max() > 1e-3
    torch.testing.assert_close(exact, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(pred, ((ref[0].clamp(-1, 1) + 1) / 2), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------------- blend
@pytest.mark.parametrize('length,tile,stride', [(100, 32, 24), (32, 32, 24), (20, 32, 24), (64, 16, 16)])
def test_tile_starts_cover(length, tile, stride):
    starts = tile_starts(length, tile, stride)
    covered = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        covered[s:s + tile] = True
        assert s >= 0 and (s + tile <= length or len(starts) == 1)
    assert covered.all()


@pytest.mark.parametrize('ramp', ['linear', 'cosine'])
def test_blend_weights_partition_of_unity(ramp):
    length, tile = 100, 32
    starts = tile_starts(length, tile, 24)
    total = torch.zeros(length, dtype=torch.float64)
    for s, w in zip(starts, blend_weights_1d(starts, tile, length, ramp)):
        total[s:s + len(w)] += w
        assert (w > 0).all() and (w <= 1).all()
    torch.testing.assert_close(total, torch.ones(length, dtype=torch.float64))


class _Local(nn.Module):
    """A pointwise 'network' (1x1 conv + nearest up / average-pool down): blending must reproduce it exactly."""

    def __init__(self, cin: int, cout: int, scale: int, down: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)
        self.scale, self.down = scale, down
        self.downsample_factor = self.upsample_factor = scale
        self.latent_channels = cout // 2 if down else cin

    def forward(self, x):
        x = nn.functional.avg_pool2d(x, self.scale) if self.down else x
        y = self.conv(x)
        return y if self.down else nn.functional.interpolate(y, scale_factor=self.scale, mode='nearest')


@pytest.mark.parametrize('ramp', ['linear', 'cosine'])
def test_blend_geometry_exact_for_local_networks(ramp):
    vae = build(TRANSVAE)
    vae.encoder, vae.decoder = _Local(3, 8, 8, down=True), _Local(4, 3, 8, down=False)
    x = torch.rand(2, 3, 75, 101)
    with torch.no_grad():
        whole = vae.encoder(nn.functional.pad(x, (0, 3, 0, 5), mode='reflect'))[:, :4]
        dec = vae.decoder(whole)
        enc = vae.tiled_encode(x, tile=32, overlap=16, mode='blend', ramp=ramp).mean
        out = vae.tiled_decode(whole, tile=24, overlap=8, mode='blend', ramp=ramp)
    torch.testing.assert_close(enc, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, dec, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------------------------- memory
@pytest.mark.parametrize('mode', ['exact', 'blend'])
def test_tiled_decode_peak_is_bounded_and_estimated(mode):
    vae = build(TRANSVAE)
    z = torch.randn(1, 4, 24, 24)
    with torch.no_grad():
        whole = measure_peak_bytes(lambda: vae.decoder(z))
        tiled = measure_peak_bytes(lambda: vae.tiled_decode(z, tile=48, mode=mode))
    est = vae.estimate_peak_memory((1, 3, 192, 192), 'decode', tile=48, mode=mode)
    assert tiled < 0.6 * whole
    assert 0.7 * tiled <= est <= 1.5 * tiled
    assert abs(vae.estimate_peak_memory((1, 3, 192, 192), 'decode') - whole) <= 0.1 * whole


@pytest.mark.parametrize('direction', ['encode', 'decode'])
def test_auto_tile_respects_budget(direction):
    vae = build(TRANSVAE)
    shape = (1, 3, 192, 192)
    whole = vae.estimate_peak_memory(shape, direction) / 2**20
    assert choose_tile(vae, direction, shape, TilingConfig(memory_budget_mb=whole * 1.5)) is None
    budget = whole / 2
    tile = choose_tile(vae, direction, shape, TilingConfig(memory_budget_mb=budget))
    assert tile is not None and tile % 4 == 0 and tile < 192
    with torch.no_grad():
        if direction == 'encode':
            x = image(1, 192, 192)
            peak = measure_peak_bytes(lambda: vae.tiled_encode(x, memory_budget_mb=budget).mean)
        else:
            z = torch.randn(1, 4, 24, 24)
            peak = measure_peak_bytes(lambda: vae.tiled_decode(z, memory_budget_mb=budget))
    assert peak <= budget * 2**20
    with pytest.raises(MemoryError, match='no tile fits'):
        choose_tile(vae, direction, shape, TilingConfig(memory_budget_mb=0.01))
