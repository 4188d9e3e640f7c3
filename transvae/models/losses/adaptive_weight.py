"""Adaptive loss re-weighting of VQGAN / VA-VAE (PAPER.md §3.3, §3.4).

``w = clamp(||dL_nll / dW|| / (||dL_other / dW|| + eps), 0, max_weight)`` where ``W`` is a reference weight: the
decoder's last conv for the GAN loss (``max_weight`` 1e4, taming) and the encoder's latent out-projection for the VF
loss (``max_weight`` 1e8, VA-VAE). The weight is detached: it scales the loss, it is not optimised.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['adaptive_weight']


def adaptive_weight(nll: Tensor, other: Tensor, last_layer: Tensor, eps: float = 1e-4,
                    max_weight: float = 1e4) -> Tensor:
    """Gradient-norm ratio of two losses with respect to one weight tensor.

    Both gradients are taken with ``torch.autograd.grad(..., retain_graph=True)``, so the graph stays available for
    the following ``backward()``; nothing is accumulated into ``.grad``.

    Args:
        nll: scalar reconstruction NLL.
        other: scalar loss to balance (VF or generator loss), *before* its hyper-weight.
        last_layer: the reference weight (must require grad and be in the graph of both losses).
        eps: added to the denominator norm.
        max_weight: upper clamp.

    Returns:
        a detached scalar tensor.

    Raises:
        RuntimeError: ``last_layer`` does not require grad (e.g. a frozen encoder) or is not in a loss's graph.
    """
    if not last_layer.requires_grad:
        raise RuntimeError('adaptive_weight: the reference layer does not require grad (frozen?); the adaptive '
                           'weight is undefined there')
    nll_grad = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    other_grad = torch.autograd.grad(other, last_layer, retain_graph=True)[0]
    w = torch.norm(nll_grad) / (torch.norm(other_grad) + eps)
    return torch.clamp(w, 0.0, max_weight).detach()
