"""tools/analysis_tools/study_diagnostics.py: the colour / luma split, the global colour gain and the latent SNR."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from projects.paper_studies.paper_studies.diagnostics import colour_gain, colour_stats, latent_snr, to_ycc
from transvae.models.distributions import DiagonalGaussian


def _photo_like(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(2, 3, 16, 16, generator=g) * 0.6 + 0.2).clamp(0, 1)


def test_colour_stats_separates_chroma_from_luma():
    x = _photo_like()
    perfect = colour_stats(x, x)
    assert perfect['l1'] == 0 and perfect['sat'] == pytest.approx(1.0) and perfect['cast'] == 0
    gray = to_ycc(x)[:, :1].expand_as(x)  # exact luma, no colour (BT.601 weights sum to 1)
    s = colour_stats(x, gray)
    assert s['Y l1'] < 1e-6 and s['sat'] < 1e-6
    assert s['C l1'] == pytest.approx(float(to_ycc(x)[:, 1:].abs().mean()), rel=1e-5)
    shifted = colour_stats(x, x + torch.tensor([0.1, 0.0, -0.05]).view(1, 3, 1, 1))
    assert shifted['cast'] == pytest.approx(0.1, abs=1e-6) and shifted['l1 mc'] < 1e-6 < shifted['l1']
    with pytest.raises(ValueError, match='equal'):
        colour_stats(x, x[:, :2])


class _Toy(nn.Module):
    """A 'VAE' whose decoder is ``scale * z`` plus a fixed colour, so its global colour gain is ``scale``."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(torch.cat([x, torch.full_like(x, -4.0)], dim=1))

    def decode(self, z: torch.Tensor, out_size=None) -> torch.Tensor:
        return self.scale * z + (1 - self.scale) * 0.2


@pytest.mark.parametrize('scale', [1.0, 0.25, 0.0])
def test_colour_gain_measures_the_passed_fraction_of_a_global_shift(scale):
    assert colour_gain(_Toy(scale), _photo_like()) == pytest.approx(scale, abs=1e-5)


def test_latent_snr():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 3, 8, 8, generator=g) * 2.0  # variance ~4
    assert latent_snr(mean, torch.full_like(mean, 0.0)) == pytest.approx(4.0, rel=0.2)
    assert latent_snr(mean, torch.full_like(mean, -2.0)) == pytest.approx(4.0 * torch.e ** 2, rel=0.2)
