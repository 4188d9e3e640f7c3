"""Hinge GAN loss with taming's adaptive generator weight and a ``disc_start`` gate (PAPER.md §3.3).

* D: ``0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))``.
* G: ``-mean D(x_hat)``, scaled by ``disc_factor * disc_weight * clamp(||dnll/dL|| / (||dg/dL|| + 1e-4), 0, 1e4)``
  with ``L`` the decoder's last conv weight.
* ``disc_factor = 0`` before iteration ``disc_start``; the iteration is read from mmengine's ``MessageHub``
  (``'iter'``, checkpointed and restored on resume), never from a Python counter.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from torch import Tensor, nn

from transvae.registry import MODELS

from .adaptive_weight import adaptive_weight

__all__ = ['HingeGANLoss', 'current_iter']


def current_iter() -> int:
    """The runner's current iteration (``MessageHub`` info ``'iter'``; 0 outside a Runner)."""
    return int(MessageHub.get_current_instance().get_info('iter', 0) or 0)


@MODELS.register_module()
class HingeGANLoss(nn.Module):
    """Hinge losses for the discriminator and the generator.

    Args:
        disc_weight: the GAN weight (0.1 in the paper's final recipe; VA-VAE's ``disc_weight``).
        disc_start: first iteration with a non-zero ``disc_factor`` (and with D updates).
        disc_factor: the factor once started (1.0).
        adaptive: taming's adaptive weight against the decoder's last layer.
        max_weight: its upper clamp (1e4).
        eps: its denominator epsilon (1e-4).
    """

    def __init__(self, disc_weight: float = 0.1, disc_start: int = 0, disc_factor: float = 1.0,
                 adaptive: bool = True, max_weight: float = 1e4, eps: float = 1e-4) -> None:
        super().__init__()
        self.disc_weight = disc_weight
        self.disc_start = disc_start
        self.factor = disc_factor
        self.adaptive = adaptive
        self.max_weight = max_weight
        self.eps = eps

    def disc_factor(self, it: int | None = None) -> float:
        """``disc_factor`` at iteration ``it`` (default: the MessageHub's)."""
        it = current_iter() if it is None else it
        return self.factor if it >= self.disc_start else 0.0

    def active(self, it: int | None = None) -> bool:
        """Whether the GAN (G term and D updates) is on at iteration ``it``."""
        return self.disc_factor(it) > 0

    @staticmethod
    def d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
        """``0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))``."""
        return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())

    @staticmethod
    def g_loss(logits_fake: Tensor) -> Tensor:
        """``-mean D(x_hat)``."""
        return -logits_fake.mean()

    def generator_loss(self, logits_fake: Tensor, nll: Tensor | None = None, last_layer: Tensor | None = None,
                       it: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted generator loss and logs (``g_raw``, ``g_weight``: the full multiplier of ``g_raw``)."""
        g = self.g_loss(logits_fake)
        factor = self.disc_factor(it)
        if self.adaptive and nll is not None and last_layer is not None and torch.is_grad_enabled():
            w = adaptive_weight(nll, g, last_layer, eps=self.eps, max_weight=self.max_weight)
        else:
            w = g.new_ones(())
        w = w * self.disc_weight * factor
        return w * g, {'g_raw': g.detach(), 'g_weight': w.detach()}

    def discriminator_loss(self, logits_real: Tensor, logits_fake: Tensor,
                           it: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """``disc_factor * d_loss`` and logs (``d_real``, ``d_fake``: mean logits)."""
        d = self.disc_factor(it) * self.d_loss(logits_real, logits_fake)
        return d, {'d_real': logits_real.detach().mean(), 'd_fake': logits_fake.detach().mean()}
