"""Tiled encode / decode: exactness with one tile, blending geometry, overlap helps, memory estimate and budget."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from transvae.apis import choose_tile, estimate_peak_memory, tiled_decode, tiled_encode
from transvae.apis.tiling import blend_weights_1d, measure_peak_bytes, tile_starts


def smooth_image(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
    return 0.8 * torch.stack([torch.sin(3 * yy + 1), torch.cos(4 * xx), torch.sin(2 * (xx + yy))])[None]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4.0 / ((a - b) ** 2).mean()))  # range [-1, 1]


@pytest.mark.parametrize('length,tile,stride', [(100, 32, 24), (32, 32, 24), (20, 32, 24), (64, 16, 16)])
def test_tile_starts_cover(length, tile, stride):
    starts = tile_starts(length, tile, stride)
    covered = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        covered[s:s + tile] = True
        assert s >= 0 and (s + tile <= length or len(starts) == 1)
    assert covered.all()


@pytest.mark.parametrize('mode', ['linear', 'cosine'])
def test_blend_weights_partition_of_unity(mode):
    length, tile = 100, 32
    starts = tile_starts(length, tile, 24)
    total = torch.zeros(length, dtype=torch.float64)
    for s, w in zip(starts, blend_weights_1d(starts, tile, length, mode)):
        total[s:s + len(w)] += w
        assert (w > 0).all() and (w <= 1).all()
    torch.testing.assert_close(total, torch.ones(length, dtype=torch.float64))


def test_one_tile_is_exact(tiny_vae):
    x = smooth_image(37, 53)
    with torch.no_grad():
        whole = tiny_vae.encode(x)
        z = whole.mean
        dec = tiny_vae.decode(z)
    tiled = tiled_encode(tiny_vae, x, tile=64, overlap=16)
    assert torch.equal(tiled.mean, whole.mean) and torch.equal(tiled.logvar, whole.logvar)
    assert torch.equal(tiled_decode(tiny_vae, z, tile_latent=8, overlap_latent=2), dec)


class _Local(nn.Module):
    """A pointwise 'network' (1x1 conv + nearest up / average-pool down): tiling must reproduce it exactly."""

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


@pytest.mark.parametrize('blend', ['linear', 'cosine'])
def test_blend_geometry_exact_for_local_networks(tiny_vae, blend):
    """Every tile output lands where it belongs and the weights normalise: exact for a pointwise network."""
    f, d = tiny_vae.downsample_factor, tiny_vae.latent_channels
    tiny_vae.encoder = _Local(3, 2 * d, f, down=True)
    tiny_vae.decoder = _Local(d, 3, f, down=False)
    tiny_vae.decoder.conv_out = tiny_vae.decoder.conv
    x = torch.rand(2, 3, 75, 101)
    with torch.no_grad():
        whole = tiny_vae.encode(x).mean
        dec = tiny_vae.decoder(whole)
    torch.testing.assert_close(tiled_encode(tiny_vae, x, 32, 16, blend=blend).mean, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tiled_decode(tiny_vae, whole, 3, 1, blend=blend), dec, atol=1e-5, rtol=1e-5)


def test_overlap_brings_tiles_closer_to_whole(tiny_vae):
    """Random TransVAE weights have global attention, so tiles differ from the whole image; overlapping and
    blending must reduce that difference relative to hard-cut tiles (a trained model is checked by the
    tiling-quality script on real photos)."""
    x = smooth_image(96, 128)
    with torch.no_grad():
        whole = tiny_vae.encode(x).mean
        dec = tiny_vae.decoder(whole)
    enc0, enc1 = (psnr(tiled_encode(tiny_vae, x, 48, ov).mean, whole) for ov in (0, 24))
    dec0, dec1 = (psnr(tiled_decode(tiny_vae, whole, 6, ov), dec) for ov in (0, 3))
    assert enc1 > enc0 + 0.5 and dec1 > dec0 + 0.5


def test_memory_estimate_matches_measurement(tiny_vae):
    z = torch.zeros(1, 4, 12, 10)
    with torch.no_grad():
        measured = measure_peak_bytes(lambda: tiny_vae.decoder(z))
    est = estimate_peak_memory(tiny_vae, (1, 3, 96, 80), 'decode')
    assert abs(est - measured) <= 0.1 * measured


@pytest.mark.parametrize('direction', ['encode', 'decode'])
def test_choose_tile_respects_budget(tiny_vae, direction):
    shape = (1, 3, 160, 160)
    whole = estimate_peak_memory(tiny_vae, shape, direction) / 2**20
    assert choose_tile(tiny_vae, shape, whole * 1.5, direction) is None
    budget = whole / 3
    tile = choose_tile(tiny_vae, shape, budget, direction, overlap=16)
    assert tile is not None and tile % tiny_vae.downsample_factor == 0 and 16 < tile < 160
    with torch.no_grad():
        if direction == 'encode':
            x = torch.rand(*shape) * 2 - 1
            peak = measure_peak_bytes(lambda: tiled_encode(tiny_vae, x, tile, 16).mean)
        else:
            z = torch.randn(1, 4, 20, 20)
            peak = measure_peak_bytes(lambda: tiled_decode(tiny_vae, z, tile // 8, 2))
    assert peak <= budget * 2**20
    with pytest.raises(MemoryError):
        choose_tile(tiny_vae, shape, 0.01, direction)
