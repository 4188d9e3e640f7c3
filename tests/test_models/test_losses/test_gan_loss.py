"""PatchGAN discriminator shapes / init and the hinge GAN loss (PAPER.md §3.3)."""
from __future__ import annotations

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

from transvae.models.discriminators import PatchGANDiscriminator
from transvae.models.losses import HingeGANLoss
from transvae.registry import MODELS


@pytest.mark.parametrize('size,grid', [(256, 30), (64, 6)])
def test_discriminator_shapes(size, grid):
    d = MODELS.build(dict(type='PatchGANDiscriminator', ndf=16 if size == 256 else 64))
    with torch.no_grad():
        assert d(torch.zeros(1, 3, size, size)).shape == (1, 1, grid, grid)


def test_discriminator_layout_and_init():
    torch.manual_seed(0)
    d = PatchGANDiscriminator()  # taming defaults: ndf 64, 3 layers
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1] and all(c.kernel_size == (4, 4) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3
    assert all(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in d.modules()
               if isinstance(m, nn.LeakyReLU))
    # conv1 (w+b) + 3 bias-free convs with BN (w, b) + final conv (w+b)
    assert sum(p.numel() for p in d.parameters()) == (3136 + 131072 + 256 + 524288 + 512 + 2097152 + 1024 + 8193)
    w = convs[2].weight.detach()
    assert abs(float(w.mean())) < 2e-3 and abs(float(w.std()) - 0.02) < 1e-3


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    d = HingeGANLoss.d_loss(real, fake)
    ref = 0.5 * ((0 + 0.5 + 2) / 3 + (0 + 1 + 2) / 3)
    assert torch.isclose(d, torch.tensor(ref))
    assert torch.isclose(HingeGANLoss.g_loss(fake), torch.tensor(1 / 3))


def test_disc_start_from_message_hub_and_adaptive_weight():
    hub = MessageHub.get_current_instance()
    loss = HingeGANLoss(disc_weight=0.1, disc_start=5)
    hub.update_info('iter', 4)
    assert loss.disc_factor() == 0.0 and not loss.active()
    hub.update_info('iter', 5)
    assert loss.disc_factor() == 1.0 and loss.active()
    torch.manual_seed(0)
    last = nn.Conv2d(4, 3, 3, padding=1)
    h = torch.randn(2, 4, 8, 8)
    x_hat = last(h)
    nll = (x_hat - 1).abs().sum() / 2
    logits = x_hat.mean(dim=1, keepdim=True) * 3
    g, logs = loss.generator_loss(logits, nll=nll, last_layer=last.weight)
    g1 = torch.autograd.grad((last(h) - 1).abs().sum() / 2, last.weight)[0]
    g2 = torch.autograd.grad(-(last(h).mean(dim=1, keepdim=True) * 3).mean(), last.weight)[0]
    w = (g1.norm() / (g2.norm() + 1e-4)).clamp(0, 1e4) * 0.1
    assert torch.allclose(logs['g_weight'], w) and torch.allclose(g, w * -logits.mean())
    d, dlogs = loss.discriminator_loss(torch.ones(1, 1, 2, 2), -torch.ones(1, 1, 2, 2), it=0)
    assert float(d) == 0.0 and set(dlogs) == {'d_real', 'd_fake'}
    hub.update_info('iter', 0)
