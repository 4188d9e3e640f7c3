"""VF (vision-foundation alignment) loss of VA-VAE (PAPER.md §3.4), with its adaptive weight.

``L_vf = w_hyper * w_adaptive * (L_mcos + L_mdms)`` on the projected latent ``z' = W z`` (1 x 1 conv, no bias,
``d_z -> C_f``) and frozen foundation features ``f``:

* ``L_mcos = mean_{b,ij} relu(1 - m1 - cos(z'_ij, f_ij))`` (cosine over channels, ``m1 = 0.5``);
* ``L_mdms = mean_{b,a,c} relu(|cos(z'_a, z'_c) - cos(f_a, f_c)| - m2)`` (pairwise cosine matrices over the
  spatial positions of each image, ``m2 = 0.25``);
* ``w_adaptive = clamp(||dL_nll/dE_last|| / (||d(L_mcos + L_mdms)/dE_last|| + 1e-4), 0, 1e8)`` against the
  encoder's latent out-projection ``E_last``.

Grids: when the latent grid and the feature grid differ, the larger one is adaptive-average-pooled to the smaller
(f8 latent 32² -> DINOv2's 16²: the paper's App. F choice, 2 x 2 average pooling of ``z'``, PAPER.md Q10; a latent
smaller than the feature grid, e.g. f16 on small CPU crops, pools the features instead).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from transvae.registry import MODELS

from .adaptive_weight import adaptive_weight

__all__ = ['VFLoss', 'vf_loss_terms', 'match_grids']


def match_grids(z: Tensor, feats: Tensor) -> tuple[Tensor, Tensor]:
    """Adaptive-average-pool the larger of ``z`` ``(B, C, h, w)`` / ``feats`` ``(B, C_f, gh, gw)`` to the smaller grid.

    Each spatial axis is pooled independently (``h = 2 gh`` -> exact 2 x 2 average pooling).
    """
    (h, w), (gh, gw) = z.shape[-2:], feats.shape[-2:]
    th, tw = min(h, gh), min(w, gw)
    if (h, w) != (th, tw):
        z = F.adaptive_avg_pool2d(z, (th, tw))
    if (gh, gw) != (th, tw):
        feats = F.adaptive_avg_pool2d(feats, (th, tw))
    return z, feats


def vf_loss_terms(z_proj: Tensor, feats: Tensor, cos_margin: float = 0.5,
                  distmat_margin: float = 0.25) -> tuple[Tensor, Tensor]:
    """The two VF terms for same-shaped ``z_proj``, ``feats`` ``(B, C, h, w)``.

    Returns:
        ``(L_mcos, L_mdms)`` scalars.
    """
    if z_proj.shape != feats.shape:
        raise ValueError(f'VF terms need equal shapes, got {tuple(z_proj.shape)} and {tuple(feats.shape)}')
    mcos = F.relu(1.0 - cos_margin - F.cosine_similarity(z_proj, feats, dim=1)).mean()
    zn = F.normalize(z_proj.flatten(2), dim=1)  # (B, C, N)
    fn = F.normalize(feats.flatten(2), dim=1)
    z_sim = torch.einsum('bci,bcj->bij', zn, zn)  # (B, N, N)
    f_sim = torch.einsum('bci,bcj->bij', fn, fn)
    mdms = F.relu((z_sim - f_sim).abs() - distmat_margin).mean()
    return mcos, mdms


@MODELS.register_module()
class VFLoss(nn.Module):
    """VA-VAE's VF loss with a learnable projection and a frozen foundation model.

    Args:
        in_channels: latent channels ``d_z`` (injected by the VAE).
        foundation_cfg: a registered frozen feature extractor (``DINOv2`` with a local ``weights_path`` for the
            paper; ``VGG16Proxy`` offline). It holds no parameters visible to the parent (not in checkpoints).
        loss_weight: ``w_hyper`` (0.1).
        cos_margin: ``m1`` (0.5).
        distmat_margin: ``m2`` (0.25).
        adaptive: use the adaptive weight (needs ``nll`` and ``last_layer`` in :meth:`forward`).
        max_weight: upper clamp of the adaptive weight (1e8).
        eps: denominator epsilon of the adaptive weight (1e-4).

    The projection ``proj`` is a registered submodule, so its weight is in the generator optimizer and the checkpoint.
    A foundation network that needs a weight file (DINOv2) is built lazily: by :meth:`train` ``(True)`` while the
    projection is trainable (training starts: the Runner calls ``model.train()`` before the first step, so a missing
    file is an error there) or at the first forward; never for a model built for inference (``eval()``) or one whose
    VF loss is frozen (stage 2 with a frozen encoder).
    """

    def __init__(self, in_channels: int, foundation_cfg: dict, loss_weight: float = 0.1, cos_margin: float = 0.5,
                 distmat_margin: float = 0.25, adaptive: bool = True, max_weight: float = 1e8,
                 eps: float = 1e-4) -> None:
        super().__init__()
        self.foundation = MODELS.build(foundation_cfg)
        self.proj = nn.Conv2d(in_channels, self.foundation.out_channels, kernel_size=1, bias=False)
        self.loss_weight = loss_weight
        self.cos_margin = cos_margin
        self.distmat_margin = distmat_margin
        self.adaptive = adaptive
        self.max_weight = max_weight
        self.eps = eps
        self._announced = False

    def train(self, mode: bool = True) -> 'VFLoss':
        """Set the mode; training with a trainable projection builds a lazy foundation network (fails early)."""
        super().train(mode)
        build = getattr(self.foundation, 'build', None)  # FrozenFoundationModel.build (a stand-in may lack it)
        if mode and callable(build) and any(p.requires_grad for p in self.proj.parameters()):
            build()
            self._announce()  # also here: a compiled forward skips it (transvae/engine/compile.py)
        return self

    @property
    def log_key(self) -> str:
        """Log key of the unweighted VF value: ``vf_<foundation tag>`` (e.g. ``vf_dinov2``, ``vf_vgg16_proxy``)."""
        return f'vf_{self.foundation.log_tag}'

    def _announce(self) -> None:
        if not self._announced:
            proxy = ' -- a PROXY, not the paper\'s DINOv2' if getattr(self.foundation, 'is_proxy', False) else ''
            print_log(f'VF loss target: {self.foundation.name}{proxy}', logger='current')
            self._announced = True

    def features(self, images: Tensor) -> Tensor:
        """Frozen foundation features of ``images`` ``(B, 3, H, W)`` in ``[-1, 1]`` (no grad)."""
        return self.foundation(images)

    def raw(self, z: Tensor, feats: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``L_mcos + L_mdms`` of latents ``z`` ``(B, d_z, h, w)`` and features, and detached per-term logs."""
        z_proj, feats = match_grids(self.proj(z), feats.to(z.dtype))
        mcos, mdms = vf_loss_terms(z_proj, feats, self.cos_margin, self.distmat_margin)
        return mcos + mdms, {'vf_mcos': mcos.detach(), 'vf_mdms': mdms.detach()}

    def forward(self, z: Tensor, images: Tensor, nll: Tensor | None = None,
                last_layer: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted VF loss.

        Args:
            z: latent (the sample fed to the decoder) ``(B, d_z, h, w)``.
            images: the input images ``(B, 3, H, W)`` in ``[-1, 1]``.
            nll: the reconstruction NLL (for the adaptive weight).
            last_layer: the encoder's latent out-projection weight (for the adaptive weight).

        Returns:
            the loss and logs ``{vf_<tag>: unweighted value, vf_mcos, vf_mdms, vf_weight: adaptive weight}``.
        """
        if not torch.compiler.is_compiling():  # a log call inside a compiled graph is a graph break
            self._announce()
        raw, logs = self.raw(z, self.features(images))
        if self.adaptive and nll is not None and last_layer is not None and torch.is_grad_enabled():
            w = adaptive_weight(nll, raw, last_layer, eps=self.eps, max_weight=self.max_weight)
        else:
            w = raw.new_ones(())
        logs[self.log_key] = raw.detach()
        logs['vf_weight'] = w
        return self.loss_weight * w * raw, logs
