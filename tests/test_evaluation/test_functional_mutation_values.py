"""``transvae/evaluation/functional`` SSIM: the cases the mutation run (tools/analysis_tools/mutation.sh,
docs/TESTING.md) found unpinned, against torchmetrics 1.9 (the definition ``ssim`` states) with tight tolerances:
dark images (where the constant ``C1 = (0.01 * 255)^2`` dominates), a non-default sigma and window, a non-default
``data_range``, a non-square image exactly one window high, and the defaults of ``gaussian_kernel1d``."""
from __future__ import annotations

import pytest
import torch

from transvae.evaluation import functional as TF
from transvae.evaluation.functional.image_quality import gaussian_kernel1d


def _tm(p8: torch.Tensor, g8: torch.Tensor, **kw) -> list[float]:
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    return [tm_ssim(p8[i:i + 1].float(), g8[i:i + 1].float(), data_range=255.0, **kw).item()
            for i in range(p8.shape[0])]


def test_ssim_on_dark_images_matches_torchmetrics():
    """Pixel values 0..6 of 255: the means are tiny, so the C1 term decides the value."""
    g = torch.Generator().manual_seed(0)
    p8 = torch.randint(0, 7, (2, 3, 12, 17), generator=g).double()
    g8 = torch.randint(0, 7, (2, 3, 12, 17), generator=g).double()
    ours = TF.ssim(p8 / 255, g8 / 255)
    for o, t in zip(ours.tolist(), _tm(p8, g8)):
        assert o == pytest.approx(t, abs=2e-6)


def test_ssim_window_sigma_and_data_range_are_used():
    """Sigma 1.0 with its 9-wide window (torchmetrics sizes a Gaussian window ``2 int(3.5 sigma + 0.5) + 1``),
    inputs in [0, 2] (data_range 2), on an 11 x 15 image (exactly one default window high, the smallest allowed)."""
    g = torch.Generator().manual_seed(1)
    p8 = torch.randint(0, 256, (2, 3, 11, 15), generator=g).double()
    g8 = (p8 + torch.randint(-40, 41, (2, 3, 11, 15), generator=g)).clamp(0, 255)
    ours = TF.ssim(p8 / 255 * 2, g8 / 255 * 2, data_range=2.0, win_size=9, sigma=1.0)
    for o, t in zip(ours.tolist(), _tm(p8, g8, sigma=1.0)):
        assert o == pytest.approx(t, abs=2e-6)
    ours = TF.ssim(p8 / 255, g8 / 255)  # the default window fits an 11-pixel side
    for o, t in zip(ours.tolist(), _tm(p8, g8)):
        assert o == pytest.approx(t, abs=2e-6)
    with pytest.raises(ValueError, match=r'^ssim: images must be at least 11x11, got \(10, 15\)$'):
        TF.ssim(p8[..., :10, :] / 255, g8[..., :10, :] / 255)
    with pytest.raises(ValueError, match=r'^ssim: win_size must be odd, got 8$'):
        TF.ssim(p8 / 255, g8 / 255, win_size=8)


def test_gaussian_kernel_defaults():
    k = gaussian_kernel1d()
    coords = torch.arange(11, dtype=torch.float64) - 5
    want = torch.exp(-(coords / 1.5) ** 2 / 2)
    torch.testing.assert_close(k, want / want.sum(), rtol=1e-12, atol=0)
