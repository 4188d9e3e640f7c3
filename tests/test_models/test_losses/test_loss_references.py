"""Every loss by value with weights != 1, caps that bind, non-default eps / margins (issue 23): the reconstruction
NLL (pixel and LPIPS weights, learnable log-variance), the KL weight, the hinge GAN loss (disc weight, disc factor,
disc_start gate, taming's adaptive weight with its cap), ``adaptive_weight`` itself, the weighted VF loss. Each is
compared with the formula of PAPER.md §3 written out by hand on non-square images."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from transvae.models.distributions import DiagonalGaussian
from transvae.models.losses import HingeGANLoss, KLLoss, ReconstructionNLL, VFLoss, adaptive_weight
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')


def images(seed: int, b: int = 3, hw: tuple[int, int] = (32, 40)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, *hw, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(b, 3, *hw, generator=g)).clamp(-1, 1)
    return x, y


# ----------------------------------------------------------------------------------------------- reconstruction NLL
@pytest.fixture(scope='module')
def rec_with_lpips() -> ReconstructionNLL:
    """Pixel weight 0.7, LPIPS weight 0.3, log-variance 0.4, the real (offline) LPIPS-alex: its values are pinned
    against the reference package in test_lpips.py; its weighting here."""
    return ReconstructionNLL(pixel_weight=0.7, perceptual_cfg=dict(type='LPIPS', net='alex'),
                             perceptual_weight=0.3, logvar_init=0.4)


def test_reconstruction_nll_matches_hand_formula(rec_with_lpips):
    """``sum_{b,c,h,w} [(0.7 |x - y| + 0.3 LPIPS_b) / e^s + s] / B`` with ``s = 0.4``, and its logs."""
    rec = rec_with_lpips
    x, y = images(0)
    nll, logs = rec(x, y)
    p = rec.perceptual(x, y).double()  # (B,)
    assert p.shape == (3,) and float(p.min()) > 0.01  # large enough that its weight shows (~2% of the NLL)
    l1 = (x - y).abs().double()
    s = 0.4
    per_pixel = (0.7 * l1 + 0.3 * p.view(3, 1, 1, 1)) / math.exp(s) + s
    assert per_pixel.shape == (3, 3, 32, 40)  # LPIPS broadcast over every pixel of its image
    torch.testing.assert_close(nll.double(), per_pixel.sum() / 3, rtol=1e-5, atol=0)
    torch.testing.assert_close(logs['l1'].double(), l1.mean(), rtol=1e-6, atol=0)  # unweighted
    torch.testing.assert_close(logs['lpips'].double(), p.mean(), rtol=1e-6, atol=0)
    assert abs(float(logs['logvar']) - s) < 1e-7
    assert not any('loss' in k for k in logs)
    # the learnable log-variance: dNLL/ds = sum(1 - rec / e^s) / B
    rec.zero_grad()
    nll.backward()
    want = (1.0 - (0.7 * l1 + 0.3 * p.view(3, 1, 1, 1)) / math.exp(s)).sum() / 3
    torch.testing.assert_close(rec.logvar.grad.double().reshape(()), want, rtol=1e-5, atol=1e-6)


def test_reconstruction_nll_without_perceptual_and_fixed_logvar():
    rec = ReconstructionNLL(pixel_weight=1.7, perceptual_cfg=None, logvar_init=-0.6, learn_logvar=False)
    assert not rec.logvar.requires_grad
    x, y = images(1, b=2, hw=(8, 12))
    nll, logs = rec(x, y)
    want = ((1.7 * (x - y).abs().double()) / math.exp(-0.6) - 0.6).sum() / 2
    torch.testing.assert_close(nll.double(), want, rtol=1e-6, atol=0)
    assert 'lpips' not in logs


# ----------------------------------------------------------------------------------------------- KL
def test_kl_loss_weight_and_batch_mean():
    g = torch.Generator().manual_seed(2)
    mean, logvar = 0.5 + torch.randn(3, 4, 3, 5, generator=g), torch.rand(3, 4, 3, 5, generator=g) * 3 - 2
    post = DiagonalGaussian(torch.cat([mean, logvar], 1))
    per_item = kl_divergence(Normal(mean.double(), torch.exp(0.5 * logvar.double())), Normal(0.0, 1.0)).sum((1, 2, 3))
    torch.testing.assert_close(KLLoss(loss_weight=3e-3)(post).double(), 3e-3 * per_item.mean(), rtol=1e-5, atol=0)
    assert KLLoss().loss_weight == 1e-8  # the paper's weight is the default


# ----------------------------------------------------------------------------------------------- adaptive weight
def _grad_norm(loss_fn, layer: nn.Module) -> float:
    return float(torch.autograd.grad(loss_fn(), layer.weight)[0].norm())


def test_adaptive_weight_eps_and_both_clamps():
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 5, 7)
    nll_fn, other_fn = (lambda: (layer(x) ** 2).sum() * 0.01), (lambda: layer(x).sin().mean())
    n1, n2 = _grad_norm(nll_fn, layer), _grad_norm(other_fn, layer)
    y = layer(x)
    nll, other = (y ** 2).sum() * 0.01, y.sin().mean()
    for eps, cap in [(0.5, 1e4), (1e-4, 1e8), (0.5, 0.3 * n1 / (n2 + 0.5))]:
        w = adaptive_weight(nll, other, layer.weight, eps=eps, max_weight=cap)
        assert math.isclose(float(w), min(n1 / (n2 + eps), cap), rel_tol=1e-5), (eps, cap)


# ----------------------------------------------------------------------------------------------- hinge GAN
@pytest.fixture()
def gan_setup():
    torch.manual_seed(3)
    last = nn.Conv2d(4, 3, 3, padding=1)
    h = torch.randn(2, 4, 6, 10)

    def nll_fn():
        return (last(h) - 0.2).abs().sum() / 2

    def logits_fn():
        return last(h).mean(dim=1, keepdim=True) * 3 - 0.5

    return last, nll_fn, logits_fn


@pytest.mark.parametrize('capped', [False, True])
def test_generator_loss_matches_hand_formula(gan_setup, capped):
    """``disc_factor * disc_weight * clamp(||dnll/dL|| / (||dg/dL|| + eps), 0, max) * (-mean D(x_hat))`` with
    disc_weight 0.3, disc_factor 0.6, eps 0.5, and a cap that binds (capped) or not."""
    last, nll_fn, logits_fn = gan_setup
    n1 = _grad_norm(nll_fn, last)
    n2 = _grad_norm(lambda: -logits_fn().mean(), last)
    ratio = n1 / (n2 + 0.5)
    cap = 0.5 * ratio if capped else 1e4
    loss = HingeGANLoss(disc_weight=0.3, disc_start=3, disc_factor=0.6, adaptive=True, max_weight=cap, eps=0.5)
    logits = logits_fn()
    g, logs = loss.generator_loss(logits, nll=nll_fn(), last_layer=last.weight, it=3)
    w = 0.3 * 0.6 * min(ratio, cap)
    assert math.isclose(float(logs['g_weight']), w, rel_tol=1e-5)
    assert math.isclose(float(logs['g_raw']), float(-logits.detach().mean()), rel_tol=1e-6)
    assert math.isclose(float(g.detach()), w * float(-logits.detach().mean()), rel_tol=1e-5)
    # before disc_start: factor 0, the loss and its weight vanish
    g0, logs0 = loss.generator_loss(logits, nll=nll_fn(), last_layer=last.weight, it=2)
    assert float(g0.detach()) == 0.0 and float(logs0['g_weight']) == 0.0
    # without the adaptive weight (or without grad): disc_weight * disc_factor
    plain = HingeGANLoss(disc_weight=0.3, disc_start=3, disc_factor=0.6, adaptive=False)
    g1, logs1 = plain.generator_loss(logits, nll=nll_fn(), last_layer=last.weight, it=7)
    assert math.isclose(float(logs1['g_weight']), 0.18, rel_tol=1e-6)
    assert math.isclose(float(g1.detach()), 0.18 * float(-logits.detach().mean()), rel_tol=1e-6)
    with torch.no_grad():
        g2, logs2 = loss.generator_loss(logits_fn(), nll=nll_fn(), last_layer=last.weight, it=3)
    assert math.isclose(float(logs2['g_weight']), 0.18, rel_tol=1e-6)


def test_discriminator_loss_matches_hand_formula():
    """``disc_factor * 0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))`` with factor 0.6, gated by disc_start,
    on logits of different sizes (the real and fake means are taken separately)."""
    loss = HingeGANLoss(disc_weight=0.3, disc_start=4, disc_factor=0.6)
    real = torch.tensor([[1.5, 0.2, -0.7, 3.0]]).view(1, 1, 2, 2)
    fake = torch.tensor([-2.0, -0.4, 0.9, 0.1, 2.9, -1.1]).view(1, 1, 2, 3)
    ref_real = sum(max(0.0, 1 - v) for v in [1.5, 0.2, -0.7, 3.0]) / 4
    ref_fake = sum(max(0.0, 1 + v) for v in [-2.0, -0.4, 0.9, 0.1, 2.9, -1.1]) / 6
    d, logs = loss.discriminator_loss(real, fake, it=4)
    assert math.isclose(float(d), 0.6 * 0.5 * (ref_real + ref_fake), rel_tol=1e-6)
    assert math.isclose(float(logs['d_real']), 4.0 / 4, rel_tol=1e-6)
    assert math.isclose(float(logs['d_fake']), 0.4 / 6, rel_tol=1e-5)
    assert float(loss.discriminator_loss(real, fake, it=3)[0]) == 0.0
    assert loss.disc_factor(3) == 0.0 and loss.disc_factor(4) == 0.6 and loss.disc_factor(100) == 0.6


# ----------------------------------------------------------------------------------------------- VF loss
class _FixedFeatures(nn.Module):
    """A foundation stand-in with fixed features (the foundation models are tested in test_vf_loss.py)."""
    out_channels, name, log_tag, is_proxy = 512, 'fixed', 'fixed', True

    def __init__(self, feats: torch.Tensor) -> None:
        super().__init__()
        self.feats = feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feats


def _hand_vf_terms(z: torch.Tensor, f: torch.Tensor, m1: float, m2: float) -> tuple[float, float]:
    b, c, h, w = z.shape
    zs, fs = z.reshape(b, c, -1).double(), f.reshape(b, c, -1).double()
    n = h * w
    zn, fn = zs / zs.norm(dim=1, keepdim=True), fs / fs.norm(dim=1, keepdim=True)
    mcos = sum(max(0.0, 1 - m1 - float(zn[i, :, p] @ fn[i, :, p])) for i in range(b) for p in range(n)) / (b * n)
    mdms = sum(max(0.0, abs(float(zn[i, :, p] @ zn[i, :, q]) - float(fn[i, :, p] @ fn[i, :, q])) - m2)
               for i in range(b) for p in range(n) for q in range(n)) / (b * n * n)
    return mcos, mdms


@pytest.mark.parametrize('capped', [False, True])
def test_vf_loss_weighting_matches_hand_formula(capped):
    """``w_hyper * clamp(||dnll/dE|| / (||d(mcos + mdms)/dE|| + eps), 0, max) * (mcos + mdms)`` with w_hyper 0.3,
    margins 0.2 / 0.1, eps 0.05 and a cap that binds (capped) or not; a 2x3 latent grid."""
    torch.manual_seed(4)
    enc_last = nn.Conv2d(5, 4, 1)
    hidden = torch.randn(2, 5, 2, 3)
    feats = torch.randn(2, 512, 2, 3)  # VGG16Proxy's width: the projection is built for it
    target = torch.randn(2, 4, 2, 3)
    loss = VFLoss(in_channels=4, foundation_cfg=dict(type='VGG16Proxy', pretrained=False), loss_weight=0.3,
                  cos_margin=0.2, distmat_margin=0.1, adaptive=True, max_weight=1e8, eps=0.05)
    loss.foundation = _FixedFeatures(feats)

    def z_fn():
        return enc_last(hidden)

    def nll_fn():
        return (z_fn() - target).abs().sum()

    def raw_fn():
        zp = loss.proj(z_fn())
        return sum(_vf_terms_autograd(zp, feats, 0.2, 0.1))

    mcos, mdms = _hand_vf_terms(loss.proj(z_fn()).detach(), feats, 0.2, 0.1)
    ratio = _grad_norm(nll_fn, enc_last) / (_grad_norm(raw_fn, enc_last) + 0.05)
    if capped:
        loss.max_weight = 0.4 * ratio
    out, logs = loss(z_fn(), torch.zeros(2, 3, 16, 24), nll=nll_fn(), last_layer=enc_last.weight)
    w = min(ratio, loss.max_weight)
    assert math.isclose(float(logs['vf_weight']), w, rel_tol=1e-4)
    assert math.isclose(float(logs['vf_mcos']), mcos, rel_tol=1e-5)
    assert math.isclose(float(logs['vf_mdms']), mdms, rel_tol=1e-5, abs_tol=1e-7)
    assert math.isclose(float(logs['vf_fixed']), mcos + mdms, rel_tol=1e-5)
    assert math.isclose(float(out.detach()), 0.3 * w * (mcos + mdms), rel_tol=1e-4)


def _vf_terms_autograd(zp: torch.Tensor, f: torch.Tensor, m1: float, m2: float):
    """Differentiable version of the hand VF terms (for the gradient norm of the adaptive weight)."""
    b, c = zp.shape[:2]
    zn = zp.reshape(b, c, -1) / zp.reshape(b, c, -1).norm(dim=1, keepdim=True)
    fn = f.reshape(b, f.shape[1], -1) / f.reshape(b, f.shape[1], -1).norm(dim=1, keepdim=True)
    mcos = F.relu(1 - m1 - (zn * fn).sum(1)).mean()
    mdms = F.relu((zn.transpose(1, 2) @ zn - fn.transpose(1, 2) @ fn).abs() - m2).mean()
    return mcos, mdms


def test_every_registered_loss_is_covered_here():
    """The loss modules registered from transvae.models.losses all have a value test in this file."""
    import inspect
    names = {n for n, c in MODELS.module_dict.items()
             if inspect.isclass(c) and c.__module__.startswith('transvae.models.losses')}
    assert names <= {'ReconstructionNLL', 'KLLoss', 'HingeGANLoss', 'VFLoss', 'LPIPS'}, names
