"""transvae.evaluation.functional: PSNR / SSIM / LPIPS against hand computations, torchmetrics and skimage."""
import math

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

init_default_scope('transvae')

from transvae.evaluation import functional as TF  # noqa: E402

skimage_data = pytest.importorskip('skimage.data')


def _photo_batch(size: int = 64) -> torch.Tensor:
    """(4, 3, size, size) float crops in [0, 1] of four bundled photos."""
    crops = [
        skimage_data.astronaut()[:size, 150:150 + size],
        skimage_data.chelsea()[20:20 + size, 100:100 + size],
        skimage_data.coffee()[100:100 + size, 200:200 + size],
        skimage_data.rocket()[50:50 + size, 300:300 + size],
    ]
    return torch.stack([torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1) for c in crops]).float() / 255


@pytest.fixture(scope='module')
def pair():
    gt = _photo_batch()
    g = torch.Generator().manual_seed(0)
    sigmas = torch.tensor([0.02, 0.05, 0.1, 0.2]).view(4, 1, 1, 1)
    pred = (gt + sigmas * torch.randn(gt.shape, generator=g)).clamp(0, 1)
    return pred, gt


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 255).clamp(0, 255).to(torch.uint8)


def test_quantize():
    x = torch.tensor([0.0, 0.5 / 255 - 1e-6, 0.5 / 255 + 1e-6, 1.0, 1.0004])
    assert TF.quantize_uint8(x).tolist() == [0, 0, 1, 255, 255]


def test_psnr_hand_and_torchmetrics(pair):
    from torchmetrics.image import PeakSignalNoiseRatio
    pred, gt = pair
    out = TF.psnr(pred, gt)
    assert out.shape == (4, )
    p8, g8 = _uint8(pred).double(), _uint8(gt).double()
    for i in range(4):
        mse = ((p8[i] - g8[i])**2).mean().item()
        assert out[i].item() == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
        tm = PeakSignalNoiseRatio(data_range=255.0)(_uint8(pred[i:i + 1]).float(), _uint8(gt[i:i + 1]).float())
        assert out[i].item() == pytest.approx(tm.item(), abs=1e-4)
    assert torch.all(out[:-1] > out[1:])  # more noise, lower PSNR
    # quantisation: sub-LSB differences vanish, identical images give inf
    assert math.isinf(TF.psnr(gt, (gt + 0.1 / 255).clamp(0, 1))[0].item())
    # data_range rescales the inputs
    assert torch.allclose(TF.psnr(pred * 2, gt * 2, data_range=2.0), out)


def test_ssim_matches_torchmetrics_and_skimage(pair):
    from skimage.metrics import structural_similarity
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    pred, gt = pair
    ours = TF.ssim(pred, gt)
    ours_crop = TF.ssim(pred, gt, crop_border=True)
    p8, g8 = _uint8(pred), _uint8(gt)
    for i in range(4):
        tm = tm_ssim(p8[i:i + 1].float(), g8[i:i + 1].float(), data_range=255.0).item()
        sk = structural_similarity(p8[i].permute(1, 2, 0).numpy(),
                                   g8[i].permute(1, 2, 0).numpy(),
                                   channel_axis=-1,
                                   gaussian_weights=True,
                                   sigma=1.5,
                                   use_sample_covariance=False,
                                   data_range=255)
        assert ours[i].item() == pytest.approx(tm, abs=1e-5)
        assert ours_crop[i].item() == pytest.approx(sk, abs=1e-6)
    assert torch.all(ours[:-1] > ours[1:])
    assert torch.allclose(TF.ssim(gt, gt), torch.ones(4, dtype=torch.float64))


def test_lpips_functional(pair):
    from transvae.evaluation.functional import image_quality
    from transvae.models.losses.lpips import LPIPS
    pred, gt = pair
    out = TF.lpips(pred, gt)
    assert out.shape == (4, ) and torch.all(out[:-1] < out[1:])
    assert torch.all(TF.lpips(gt, gt) == 0)
    module = image_quality._LPIPS_CACHE[('alex', 'cpu')]
    assert isinstance(module, LPIPS)
    TF.lpips(pred, gt)
    assert image_quality._LPIPS_CACHE[('alex', 'cpu')] is module  # cached, not rebuilt
    with torch.no_grad():
        direct = module(_uint8(pred).float() / 127.5 - 1, _uint8(gt).float() / 127.5 - 1)
    assert torch.allclose(out, direct, atol=1e-6)


@pytest.mark.parametrize('fn', [TF.psnr, TF.ssim, TF.lpips])
def test_input_validation(fn):
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        fn(x[0], x[0])
    with pytest.raises(ValueError, match='shapes differ'):
        fn(x, x[:1])
    with pytest.raises(ValueError, match=r'expected \[0, 1\]'):
        fn(x * 2 - 1, x)
    with pytest.raises(ValueError, match='NaN'):
        fn(x, torch.full_like(x, float('nan')))
    with pytest.raises(TypeError, match='uint8'):
        fn(_uint8(x), _uint8(x))


def test_ssim_too_small():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match='at least 11x11'):
        TF.ssim(x, x)
