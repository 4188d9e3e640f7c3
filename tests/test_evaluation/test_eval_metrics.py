"""PSNR / SSIM / LPIPS / rFID metrics through mmengine's Evaluator, with fake predict outputs."""
import logging
import math

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

init_default_scope('transvae')

from transvae.evaluation import FIDMetric, LPIPSMetric, PSNRMetric, SSIMMetric  # noqa: E402
from transvae.evaluation import functional as TF  # noqa: E402
from transvae.registry import METRICS  # noqa: E402

skimage_data = pytest.importorskip('skimage.data')


def _samples(n: int, size: int = 32, seed: int = 0, sigma: float = 0.05) -> list[dict]:
    """Predict outputs: dicts with pred_img / gt_img (3, size, size) float in [0, 1] and an img_path."""
    img = torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1).float() / 255
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        top, left = 40 * i, 30 * i
        gt = img[:, top:top + size, left:left + size].contiguous()
        pred = (gt + sigma * (i + 1) * torch.randn(gt.shape, generator=g)).clamp(0, 1)
        out.append(dict(pred_img=pred, gt_img=gt, img_path=f'img_{i}.png'))
    return out


def _run(metrics, batches):
    evaluator = Evaluator(metrics)
    for batch in batches:
        evaluator.process(data_samples=batch, data_batch=None)
    return evaluator.evaluate(sum(len(b) for b in batches))


def test_registered_and_keys():
    for name in ('PSNRMetric', 'SSIMMetric', 'LPIPSMetric', 'FIDMetric'):
        metric = METRICS.build(dict(type=name))
        assert metric.prefix is None
    assert FIDMetric.protocol == TF.FID_PROTOCOL


def test_pixel_metrics_average_over_images():
    samples = _samples(5)
    batches = [samples[:2], samples[2:]]  # uneven batches: the mean is over images, not batches
    out = _run([dict(type='PSNRMetric'), dict(type='SSIMMetric'), dict(type='LPIPSMetric')], batches)
    assert set(out) == {'psnr', 'ssim', 'lpips'}
    pred = torch.stack([s['pred_img'] for s in samples])
    gt = torch.stack([s['gt_img'] for s in samples])
    assert out['psnr'] == pytest.approx(TF.psnr(pred, gt).mean().item(), abs=1e-9)
    assert out['ssim'] == pytest.approx(TF.ssim(pred, gt).mean().item(), abs=1e-9)
    assert out['lpips'] == pytest.approx(TF.lpips(pred, gt).double().mean().item(), abs=1e-6)


def test_mixed_sizes_data_elements_and_prefix():
    small, big = _samples(2, size=24), _samples(2, size=40, seed=1)
    batch = [small[0], big[0], big[1], small[1]]
    batch = [BaseDataElement(**s) if i % 2 else s for i, s in enumerate(batch)]  # dicts and data elements
    metric = PSNRMetric(prefix='val')
    metric.process(None, batch)
    assert len(metric.results) == 4
    out = metric.evaluate(4)
    expected = np.mean([TF.psnr(s['pred_img'][None], s['gt_img'][None]).item() for s in small + big])
    assert out == {'val/psnr': pytest.approx(expected, abs=1e-9)}


def test_perfect_reconstruction():
    samples = [dict(pred_img=s['gt_img'].clone(), gt_img=s['gt_img']) for s in _samples(3)]
    out = _run([dict(type='PSNRMetric'), dict(type='SSIMMetric'), dict(type='LPIPSMetric')], [samples])
    assert math.isinf(out['psnr']) and out['ssim'] == pytest.approx(1.0) and out['lpips'] == 0


def test_bad_samples():
    metric = SSIMMetric()
    with pytest.raises(KeyError, match='pred_img'):
        metric.process(None, [dict(gt_img=torch.rand(3, 16, 16))])
    with pytest.raises(ValueError, match=r'\(3, H, W\)'):
        metric.process(None, [dict(pred_img=torch.rand(16, 16), gt_img=torch.rand(16, 16))])
    with pytest.raises(ValueError, match=r'expected \[0, 1\]'):
        metric.process(None, [dict(pred_img=torch.rand(3, 16, 16) * 2 - 1, gt_img=torch.rand(3, 16, 16))])
    with pytest.raises(ValueError, match="'alex' or 'vgg'"):
        LPIPSMetric(net='squeeze')


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append((record.levelname.lower(), record.getMessage()))


@pytest.fixture
def log_lines():
    """(level, message) of what the metrics write to the current MMLogger."""
    handler = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_fid_metric_through_evaluator(log_lines):
    samples = _samples(3, size=48, sigma=0.04)
    perfect = [dict(pred_img=s['gt_img'].clone(), gt_img=s['gt_img']) for s in samples]

    metric = FIDMetric(device='cpu')
    for batch in (perfect[:2], perfect[2:]):
        metric.process(None, batch)
    assert len(metric.results) == 3
    real = np.stack([r['real'] for r in metric.results])
    assert real.shape == (3, 2048) and np.isfinite(real).all()
    assert abs(metric.evaluate(3)['rfid']) < 1e-3
    assert any(level == 'info' and 'protocol=' in msg and 'N=3' in msg for level, msg in log_lines)
    assert ('warning', 'rFID on 3 images is biased; the paper protocol uses 50k') in log_lines

    out = _run([dict(type='FIDMetric', device='cpu'), dict(type='PSNRMetric')], [samples[:2], samples[2:]])
    assert set(out) == {'rfid', 'psnr'} and out['rfid'] > 1.0


def test_fid_metric_needs_two_images(log_lines):
    metric = FIDMetric(device='cpu')
    assert math.isnan(metric.compute_metrics([dict(real=np.zeros(2048), fake=np.zeros(2048))])['rfid'])
    assert any(level == 'warning' and 'at least 2' in msg for level, msg in log_lines)
