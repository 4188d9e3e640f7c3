"""``transvae/models/losses``: the cases the mutation run (tools/analysis_tools/mutation.sh, docs/TESTING.md) found
unpinned, by value against hand computations and torch autograd: the default weights of the GAN and reconstruction
terms, the iteration read from a fresh MessageHub, the adaptive weight's epsilon / clamps / message, the LPIPS
term broadcast per image on a batch of 2, the loading of a 0-dim ``logvar`` checkpoint, the VF target
announcement, the VF adaptive switch, and float64 latents against float32 foundation features."""
from __future__ import annotations

import math
import uuid

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

from transvae.models.losses import HingeGANLoss, ReconstructionNLL, VFLoss, adaptive_weight
from transvae.models.losses.gan_loss import current_iter
from transvae.models.losses.vf_loss import vf_loss_terms

pytestmark = pytest.mark.usefixtures('one_thread')


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ================================================================================================= GAN, iteration
def test_current_iter_of_a_fresh_hub_and_at_iteration_zero():
    """Outside a Runner (no ``'iter'`` info) and at iteration 0 the iteration is 0, not 1."""
    hub = MessageHub.get_instance(f'fresh_hub_{uuid.uuid4().hex}')  # a new instance, now the current one
    assert hub.get_info('iter') is None and current_iter() == 0
    hub.update_info('iter', 0)
    assert current_iter() == 0
    hub.update_info('iter', 7)
    assert current_iter() == 7
    hub.update_info('iter', 0)


def test_hinge_gan_defaults_and_explicit_iteration():
    """Defaults: weight 0.1, started at iteration 0, factor 1, adaptive with a 1e4 clamp; ``active(it)`` uses the
    iteration it is given, not the hub's."""
    hub = MessageHub.get_instance(f'gan_hub_{uuid.uuid4().hex}')
    hub.update_info('iter', 0)
    loss = HingeGANLoss()
    logits = torch.tensor([[0.5, -1.5], [2.0, 0.25]])
    g, logs = loss.generator_loss(logits, it=0)  # no nll: the adaptive weight is 1
    assert float(logs['g_weight']) == pytest.approx(0.1) and float(g) == pytest.approx(0.1 * -0.3125)
    late = HingeGANLoss(disc_start=3)
    assert late.active(5) and not late.active(2) and not late.active()  # the hub says 0
    # the adaptive clamp at its default 1e4: nll's gradient 2e4 times the GAN's (eps 1e-4 is negligible here)
    w = torch.ones(2, 3, requires_grad=True)
    nll, fake = 2e4 * w.sum(), (w.sum() / 1.0).reshape(1, 1)  # g = -mean(fake): gradient norm sqrt(6)
    _, logs = loss.generator_loss(fake, nll=nll, last_layer=w, it=0)
    assert float(logs['g_weight']) == pytest.approx(0.1 * 1e4)


# ============================================================================================== adaptive weight
def test_adaptive_weight_default_eps_clamps_and_message():
    """``||g_nll|| / (||g_other|| + 1e-4)`` clamped to [0, 1e4]: a zero-gradient ``other`` gives ``||g_nll|| / 1e-4``
    (7348.47 for 0.3 * sum over 6 weights), a large ratio the 1e4 cap, a ratio below 1 stays below 1."""
    w = torch.ones(2, 3, requires_grad=True)
    zero = (0.0 * w).sum()
    assert float(adaptive_weight(0.3 * w.sum(), zero, w)) == pytest.approx(0.3 * math.sqrt(6) / 1e-4, rel=1e-5)
    assert float(adaptive_weight(2.0 * w.sum(), zero, w)) == 1e4
    assert float(adaptive_weight(0.5 * w.sum(), w.sum(), w)) == pytest.approx(0.5 * math.sqrt(6) / (math.sqrt(6)
                                                                                                    + 1e-4))
    frozen = torch.ones(2, 3)
    with pytest.raises(RuntimeError, match=r'^adaptive_weight: the reference layer does not require grad \(frozen\?\); '
                                           r'the adaptive weight is undefined there$'):
        adaptive_weight(frozen.sum(), frozen.sum(), frozen)


# ================================================================================================ reconstruction
class _MeanAbs(nn.Module):
    """A perceptual stand-in ``(x, y) -> (B,)``: per-image mean |x - y| times (1 + image index)."""

    def forward(self, x, y):
        return (x - y).abs().mean(dim=(1, 2, 3)) * torch.arange(1, x.shape[0] + 1, dtype=x.dtype)


def test_reconstruction_nll_defaults_with_a_perceptual_term_on_a_batch_of_two():
    """Defaults (pixel 1, perceptual 1, logvar 0): ``sum(|x - y| + p_b) / B``, the per-image perceptual value
    broadcast over that image's 3 x H x W pixels; with a log-variance s: ``sum(rec) / exp(s) + 3HW s`` per image."""
    x = torch.rand(2, 3, 4, 5, generator=gen(1), dtype=torch.float64) * 2 - 1
    y = torch.rand(2, 3, 4, 5, generator=gen(2), dtype=torch.float64) * 2 - 1
    loss = ReconstructionNLL().double()
    loss.perceptual = _MeanAbs()
    p = _MeanAbs()(x, y)
    want = ((x - y).abs().sum() + 60 * p.sum()) / 2
    got, logs = loss(x, y)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert float(logs['logvar']) == 0.0 and float(loss.logvar.detach()) == 0.0
    s = 0.25  # exact in float32, the parameter's dtype before .double()
    loss = ReconstructionNLL(pixel_weight=0.5, perceptual_weight=2.0, logvar_init=s).double()
    loss.perceptual = _MeanAbs()
    want = ((0.5 * (x - y).abs().sum() + 2.0 * 60 * p.sum()) / math.exp(s) + 2 * 60 * s) / 2
    torch.testing.assert_close(loss(x, y)[0], want, rtol=1e-12, atol=1e-12)


def test_reconstruction_nll_loads_a_zero_dim_logvar_checkpoint():
    """A checkpoint written when ``logvar`` was a 0-dim parameter loads into the (1,) parameter (under a prefix)."""
    parent = nn.Module()
    parent.nll = ReconstructionNLL()
    parent.load_state_dict({'nll.logvar': torch.tensor(0.75)})
    assert parent.nll.logvar.shape == (1,) and float(parent.nll.logvar.detach()) == 0.75
    parent.load_state_dict({'nll.logvar': torch.tensor([-0.5])})  # the current format as well
    assert float(parent.nll.logvar.detach()) == -0.5


# ========================================================================================================== VF
class _Features(nn.Module):
    """A foundation stand-in with fixed (1, 512, h, w) features (VGG16Proxy's width, which sizes the projection);
    ``proxy`` None leaves ``is_proxy`` undefined."""

    def __init__(self, feats, name='stand-in', proxy=None):
        super().__init__()
        self.feats, self.name, self.log_tag, self.out_channels = feats, name, 'standin', feats.shape[1]
        if proxy is not None:
            self.is_proxy = proxy

    def forward(self, x):
        return self.feats.expand(x.shape[0], -1, -1, -1)


def _vf(feats, **kw) -> VFLoss:
    loss = VFLoss(in_channels=4, foundation_cfg=dict(type='VGG16Proxy', pretrained=False), **kw)
    loss.foundation = _Features(feats)
    return loss


@pytest.mark.parametrize('proxy,suffix', [(True, " -- a PROXY, not the paper's DINOv2"), (False, ''), (None, '')])
def test_vf_target_is_announced_once_to_the_current_logger(monkeypatch, proxy, suffix):
    import transvae.models.losses.vf_loss as vf_module
    calls = []
    monkeypatch.setattr(vf_module, 'print_log', lambda msg, **kw: calls.append((msg, kw)))
    loss = _vf(torch.randn(1, 512, 2, 2, generator=gen(3)))
    loss.foundation = _Features(loss.foundation.feats, name='dino-standin', proxy=proxy)
    z = torch.randn(2, 4, 2, 2, generator=gen(4))
    loss(z, torch.zeros(2, 3, 8, 8))
    loss(z, torch.zeros(2, 3, 8, 8))
    assert calls == [(f'VF loss target: dino-standin{suffix}', {'logger': 'current'})]


def test_vf_adaptive_weight_needs_both_nll_and_last_layer_and_the_switch():
    torch.manual_seed(0)
    enc = nn.Conv2d(3, 4, 2, stride=2)
    x = torch.rand(2, 3, 4, 4, generator=gen(5)) * 2 - 1
    feats = torch.randn(1, 512, 2, 2, generator=gen(6))
    z = enc(x)
    nll = (z ** 2).mean()
    assert float(_vf(feats)(z, x, last_layer=enc.weight)[1]['vf_weight']) == 1.0
    assert float(_vf(feats)(z, x, nll=nll)[1]['vf_weight']) == 1.0
    assert float(_vf(feats, adaptive=False)(z, x, nll=nll, last_layer=enc.weight)[1]['vf_weight']) == 1.0
    assert float(_vf(feats)(z, x, nll=nll, last_layer=enc.weight)[1]['vf_weight']) != 1.0


def test_vf_float64_latents_use_float64_features():
    """float32 features are cast to the latents' float64 before the cosine matrices (margins 0: every entry counts)."""
    feats = torch.randn(1, 512, 2, 3, generator=gen(7))
    loss = _vf(feats, cos_margin=0.0, distmat_margin=0.0).double()
    z = torch.randn(2, 4, 2, 3, generator=gen(8), dtype=torch.float64)
    raw, _ = loss.raw(z, feats.expand(2, -1, -1, -1))
    want = sum(vf_loss_terms(loss.proj(z), feats.double().expand(2, -1, -1, -1), 0.0, 0.0))
    assert raw.dtype == torch.float64
    torch.testing.assert_close(raw, want, rtol=1e-13, atol=1e-13)


def test_vf_terms_default_margins_and_message():
    """The default margins are VA-VAE's m1 = 0.5, m2 = 0.25 (both terms non-zero on this input, and different at
    other margins); unequal shapes are refused with both shapes in the message."""
    z, f = torch.randn(2, 5, 3, 4, generator=gen(9)), torch.randn(2, 5, 3, 4, generator=gen(10))
    default = vf_loss_terms(z, f)
    explicit = vf_loss_terms(z, f, 0.5, 0.25)
    assert all(float(t) > 0 for t in default) and all(torch.equal(a, b) for a, b in zip(default, explicit))
    assert all(not torch.equal(a, b) for a, b in zip(default, vf_loss_terms(z, f, 1.5, 1.25)))
    with pytest.raises(ValueError, match=r'^VF terms need equal shapes, got \(2, 5, 3, 4\) and \(2, 5, 4, 3\)$'):
        vf_loss_terms(z, f.transpose(2, 3))


def test_vf_loss_defaults_by_value():
    """Defaults: weight 0.1, adaptive with eps 1e-4 and a 1e8 cap (float64, where 1e8 + 1 is representable)."""
    feats = torch.randn(1, 512, 2, 2, generator=gen(11), dtype=torch.float64)
    loss = _vf(feats).double()
    enc = nn.Conv2d(3, 4, 2, stride=2).double()
    x = torch.rand(2, 3, 4, 4, generator=gen(12), dtype=torch.float64) * 2 - 1
    z = enc(x)
    nll = (z ** 2).mean()
    out, logs = loss(z, x, nll=nll, last_layer=enc.weight)
    raw = logs['vf_standin']
    w = adaptive_weight(nll, loss.raw(z, feats.expand(2, -1, -1, -1))[0], enc.weight, eps=1e-4, max_weight=1e8)
    torch.testing.assert_close(logs['vf_weight'], w, rtol=1e-12, atol=0)
    torch.testing.assert_close(out, 0.1 * w * raw, rtol=1e-12, atol=0)
    _, logs = loss(z, x, nll=1e12 * z.sum(), last_layer=enc.weight)
    assert float(logs['vf_weight']) == 1e8


class _Lazy(_Features):
    """A stand-in with a lazy ``build`` (like DINOv2's), counting its calls."""

    def __init__(self, feats):
        super().__init__(feats, proxy=False)
        self.builds = 0

    def build(self):
        self.builds += 1


def test_vf_train_builds_a_lazy_foundation_only_when_training_a_trainable_projection():
    loss = _vf(torch.randn(1, 512, 2, 2, generator=gen(13)))
    loss.foundation = _Lazy(loss.foundation.feats)
    assert loss.train() is loss and loss.training and loss.foundation.builds == 1
    loss.eval()
    loss.train(False)
    assert not loss.training and loss.foundation.builds == 1
    loss.proj.requires_grad_(False)  # a frozen VF loss (stage 2): nothing to build
    loss.train()
    assert loss.foundation.builds == 1
    plain = _vf(torch.randn(1, 512, 2, 2, generator=gen(14)))  # a stand-in without build: train() still works
    assert plain.train().training


def test_vf_target_is_announced_once_by_train_or_an_eager_forward(monkeypatch):
    """``train()`` of a trainable VF loss builds the foundation network and announces it (a compiled forward skips the
    announcement: a log call inside a compiled graph is a graph break); then neither a forward nor another ``train()``
    announces again. Without a training ``train()``, the first forward outside compilation announces, once."""
    import transvae.models.losses.vf_loss as vf_module
    calls = []
    monkeypatch.setattr(vf_module, 'print_log', lambda msg, **kw: calls.append(msg))
    feats = torch.randn(1, 512, 2, 2, generator=gen(15))
    z, x = torch.randn(2, 4, 2, 2, generator=gen(16)), torch.zeros(2, 3, 8, 8)
    loss = _vf(feats)
    loss.foundation = _Lazy(feats)
    loss.train()
    assert calls == ['VF loss target: stand-in'] and loss.foundation.builds == 1
    loss(z, x)
    loss.train()
    loss(z, x)
    assert calls == ['VF loss target: stand-in']
    # train(False), a frozen projection, a foundation without build(): train() announces nothing
    for setup in ('eval', 'frozen', 'plain'):
        calls.clear()
        other = _vf(feats)
        if setup != 'plain':
            other.foundation = _Lazy(feats)
        if setup == 'frozen':
            other.proj.requires_grad_(False)
        other.train(setup != 'eval')
        assert calls == [], setup
    # while compiling (dynamo tracing) the forward does not announce; the next eager forward does, once
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: True)
    out, logs = other(z, x)
    assert calls == [] and torch.isfinite(out)
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: False)
    other(z, x)
    other(z, x)
    assert calls == ['VF loss target: stand-in']


def test_reconstruction_nll_loads_a_checkpoint_without_logvar_non_strictly():
    parent = nn.Module()
    parent.nll = ReconstructionNLL(logvar_init=0.5)
    result = parent.load_state_dict({}, strict=False)
    assert result.missing_keys == ['nll.logvar'] and float(parent.nll.logvar.detach()) == 0.5


def test_lpips_network_is_frozen_in_eval_and_keeps_its_settings():
    """The hidden LPIPS network: no parameter requires grad, eval mode from construction on, ``alex`` by default;
    ``pretrained=False`` reaches the network: neither its heads nor its backbone are the shipped weights."""
    from transvae.models.losses.lpips import LPIPS
    from transvae.models.pretrained.offline_weights import load_lpips_backbone, load_lpips_heads
    m = LPIPS(pretrained=False)
    assert m.net_type == 'alex' and m.pretrained is False and not m.training
    assert not m.lpips_module.training and not any(p.requires_grad for p in m.lpips_module.parameters())
    assert list(m.parameters()) == [] and m.state_dict() == {}
    state = m.lpips_module.state_dict()
    heads = load_lpips_heads('alex')
    assert len(heads) == 5 and all(state[k].shape == v.shape and not torch.equal(state[k], v)
                                   for k, v in heads.items())
    backbone = load_lpips_backbone('alex')
    first_conv = state['net.slice1.0.weight']
    assert first_conv.shape == backbone['features.0.weight'].shape
    assert not torch.equal(first_conv, backbone['features.0.weight'])
