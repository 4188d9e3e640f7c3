"""A model's training loss against a hand computation at its call site (issue 23): one ``train_step`` of a tiny
CNN ``VAE`` (mmengine's ``BaseModel.train_step``) and of a ``VAEGAN`` with its discriminator and VF loss active (its
own two-optimizer ``train_step``), with every weight != 1 (pixel 0.6, LPIPS 0.3, log-variance 0.2, KL 0.05, VF 0.4,
GAN 0.3, disc factor 0.7) on images whose size is not a multiple of the compression factor (reflect-padded for the
encoder, cropped back for the losses), and a discriminator learning rate of its own. The hand side re-does the
forward from the same parameters and RNG state, writes the objective out (``(w_pix |x - x_hat| + w_p LPIPS) / e^s
+ s`` summed per image, ``w_kl * mean_b KL``, the VF terms with VA-VAE's adaptive weight against the encoder's
out-projection, taming's adaptive GAN weight against the decoder's last conv, the hinge D loss), compares every
logged term, and checks that the SGD update applied is ``-lr * grad`` of exactly that objective: a wiring mistake
between correct parts (a dropped weight, a detached term, the wrong reference layer, the loss on the padded image,
swapped optimizer settings) fails here."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from torch import nn

from transvae.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

pytestmark = pytest.mark.usefixtures('one_thread')

ARCH = dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4, attn_levels=[],
            mid_attn=False)
W_PIX, W_P, S0, W_KL, W_GAN, FACTOR, LR, LR_D = 0.6, 0.3, 0.2, 0.05, 0.3, 0.7, 0.05, 0.02
W_VF, M1, M2, VF_EPS = 0.4, 0.3, 0.1, 1e-3


@MODELS.register_module(name='TestFixedFeatureFoundation', force=True)
class FixedFeatureFoundation(nn.Module):
    """A frozen stand-in foundation model (the real ones are tested in test_vf_loss.py): fixed random features of
    the image, ``tanh(A avgpool_{4x5}(x))`` with a fixed ``A`` (16 x 3), so the VF term depends on which image
    (padded or not) it is given."""
    out_channels, name, log_tag, is_proxy = 16, 'fixed-features', 'fixed', True

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.randn(16, 3, generator=torch.Generator().manual_seed(11))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.einsum('oc,bchw->bohw', self.mix, F.adaptive_avg_pool2d(x, (4, 5))))


def model_cfg(kind: str) -> dict:
    cfg = dict(type=kind, arch=ARCH, encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
               rec_loss=dict(type='ReconstructionNLL', pixel_weight=W_PIX, perceptual_weight=W_P, logvar_init=S0,
                             perceptual_cfg=dict(type='LPIPS', net='alex', pretrained=False)),
               kl_loss=dict(type='KLLoss', loss_weight=W_KL))
    if kind == 'VAEGAN':
        cfg.update(discriminator=dict(type='PatchGANDiscriminator', ndf=8, n_layers=2), disc_start=0,
                   gan_loss=dict(type='HingeGANLoss', disc_weight=W_GAN, disc_factor=FACTOR, eps=1e-3),
                   vf_loss=dict(type='VFLoss', foundation_cfg=dict(type='TestFixedFeatureFoundation'),
                                loss_weight=W_VF, cos_margin=M1, distmat_margin=M2, eps=VF_EPS))
    return cfg


def batch(f: int) -> dict:
    """Two uint8 images of 33 x 45: odd, so not a multiple of f (a power of two) in either direction; not square."""
    g = torch.Generator().manual_seed(1)
    h, w = 33, 45
    assert h % f and w % f
    return dict(inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g) for _ in range(2)])


def hand_generator_objective(ref, data: dict, seed: int):
    """The stage-1 objective written out from ``ref``'s parts; returns (terms, x, x_hat)."""
    x = torch.stack(data['inputs']).float() / 127.5 - 1.0  # (B, 3, H, W) in [-1, 1]
    b, _, h, w = x.shape
    f = ref.downsample_factor
    xp = F.pad(x, (0, (-w) % f, 0, (-h) % f), mode='reflect')
    torch.manual_seed(seed)
    moments = ref.encoder(xp)
    mean, logvar = moments[:, :4], moments[:, 4:].clamp(-30.0, 20.0)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape)
    x_hat = ref.decoder(z)[..., :h, :w]
    l1 = (x - x_hat).abs()
    p = ref.rec_loss.perceptual(x, x_hat)
    s = ref.rec_loss.logvar.reshape(())
    nll = ((W_PIX * l1 + W_P * p.view(b, 1, 1, 1)) / torch.exp(s) + s).sum() / b
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2, 3))
    terms = dict(loss_nll=nll, loss_kl=W_KL * kl.mean(), l1=l1.mean(), lpips=p.mean(), kl=kl.mean(), logvar=s)
    if getattr(ref, 'vf_loss', None) is not None:  # VA-VAE's VF term on the sample z and the padded image
        zp = torch.einsum('oc,bchw->bohw', ref.vf_loss.proj.weight[:, :, 0, 0], z)
        feats = ref.vf_loss.foundation(xp)
        zp = F.adaptive_avg_pool2d(zp, feats.shape[-2:])  # the latent grid is the larger one here
        zn, fn = F.normalize(zp.flatten(2), dim=1), F.normalize(feats.flatten(2), dim=1)  # (B, C, N)
        mcos = F.relu(1 - M1 - (zn * fn).sum(1)).mean()
        mdms = F.relu((zn.transpose(1, 2) @ zn - fn.transpose(1, 2) @ fn).abs() - M2).mean()
        raw = mcos + mdms
        enc_last = ref.encoder.get_last_layer()
        n1 = torch.autograd.grad(nll, enc_last, retain_graph=True)[0].norm()
        n2 = torch.autograd.grad(raw, enc_last, retain_graph=True)[0].norm()
        w_vf = (n1 / (n2 + VF_EPS)).clamp(0, 1e8).detach()
        terms.update(loss_vf=W_VF * w_vf * raw, vf_fixed=raw, vf_mcos=mcos, vf_mdms=mdms, vf_weight=w_vf)
    return terms, x, x_hat


def assert_logged(log_vars: dict, terms: dict) -> None:
    for k, v in terms.items():
        assert k in log_vars, (k, sorted(log_vars))
        got, want = float(torch.as_tensor(log_vars[k]).detach()), float(v.detach())
        assert math.isclose(got, want, rel_tol=2e-5, abs_tol=1e-6), (k, got, want)


def assert_sgd_step(before: dict, after: dict, grads: dict, names: list[str], lr: float = LR) -> None:
    """``after = before - lr * grad`` for every parameter in ``names`` (a parameter without a gradient stays)."""
    for n in names:
        want = before[n] - lr * grads[n] if grads.get(n) is not None else before[n]
        torch.testing.assert_close(after[n], want, atol=2e-6, rtol=1e-4, msg=n)


def test_vae_train_step_equals_hand_objective():
    torch.manual_seed(0)
    model = MODELS.build(model_cfg('VAE'))
    model.train()
    ref = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = batch(model.downsample_factor)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=LR))

    torch.manual_seed(7)
    log_vars = model.train_step(data, wrapper)

    terms, _, _ = hand_generator_objective(ref, data, seed=7)
    total = terms['loss_nll'] + terms['loss_kl']
    assert_logged(log_vars, dict(terms, loss=total))
    assert {k for k in log_vars if k.startswith('loss')} == {'loss', 'loss_nll', 'loss_kl'}
    total.backward()
    grads = {n: p.grad for n, p in ref.named_parameters()}
    assert grads['rec_loss.logvar'] is not None and grads['encoder.conv_out.weight'] is not None
    assert_sgd_step(before, dict(model.named_parameters()), grads, list(before))


@pytest.fixture()
def iteration_zero():
    hub = MessageHub.get_current_instance()
    old = hub.get_info('iter', 0)
    hub.update_info('iter', 0)
    yield
    hub.update_info('iter', old)


def test_vaegan_train_step_equals_hand_objective(iteration_zero):
    """G step: ``nll + w_kl KL + w_vf clamp(||dnll/dE|| / (||dvf/dE|| + eps), 0, 1e8) vf
    + FACTOR W_GAN clamp(||dnll/dL|| / (||dg/dL|| + eps), 0, 1e4) (-mean D(x_hat))`` with E the encoder's latent
    out-projection, L the decoder's last conv; then the D step on the detached reconstruction: FACTOR * hinge."""
    torch.manual_seed(0)
    model = MODELS.build(model_cfg('VAEGAN'))
    model.train()
    ref = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = batch(model.downsample_factor)
    # a shared optimizer (a default) that the discriminator entry refines: G steps with LR, D with LR_D
    optim_cfg = dict(optimizer=dict(type='SGD', lr=LR), generator=dict(type='OptimWrapper'),
                     discriminator=dict(type='OptimWrapper', optimizer=dict(lr=LR_D)))
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type='VAEGANOptimWrapperConstructor', optim_wrapper_cfg=optim_cfg))
    wrappers = ctor(model)

    torch.manual_seed(7)
    log_vars = model.train_step(data, wrappers)

    terms, x, x_hat = hand_generator_objective(ref, data, seed=7)
    disc = ref.discriminator
    last = ref.decoder.get_last_layer()
    g_raw = -disc(x_hat).mean()
    n1 = torch.autograd.grad(terms['loss_nll'], last, retain_graph=True)[0].norm()
    n2 = torch.autograd.grad(g_raw, last, retain_graph=True)[0].norm()
    g_weight = FACTOR * W_GAN * (n1 / (n2 + 1e-3)).clamp(0, 1e4).detach()
    loss_g = g_weight * g_raw
    d_loss = FACTOR * 0.5 * (F.relu(1.0 - disc(x)).mean() + F.relu(1.0 + disc(x_hat.detach())).mean())
    total = terms['loss_nll'] + terms['loss_kl'] + terms['loss_vf'] + loss_g
    assert_logged(log_vars, dict(terms, loss=total, loss_g=loss_g, g_raw=g_raw, g_weight=g_weight, loss_d=d_loss))

    gen_names = [n for n in before if not n.startswith('discriminator.')]
    disc_names = [n for n in before if n.startswith('discriminator.')]
    g_grads = dict(zip(gen_names, torch.autograd.grad(total, [dict(ref.named_parameters())[n] for n in gen_names],
                                                       allow_unused=True)))
    d_grads = dict(zip(disc_names, torch.autograd.grad(d_loss, [dict(ref.named_parameters())[n] for n in disc_names],
                                                        allow_unused=True)))
    after = dict(model.named_parameters())
    assert_sgd_step(before, after, g_grads, gen_names)
    assert_sgd_step(before, after, d_grads, disc_names, lr=LR_D)
