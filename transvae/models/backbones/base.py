"""What every encoder and decoder exposes to the VAE, and how their weights are initialised."""
from __future__ import annotations

from mmengine.model import BaseModule
from torch import nn

InitCfg = dict | list | None


class _BackboneBase(BaseModule):
    """mmengine ``BaseModule`` with the backbones' explicit initialisation rule.

    Weights are initialised when the module is built, by each layer's own documented rule: PyTorch's defaults for
    ``Conv2d`` / ``Linear`` (Kaiming-uniform, a = sqrt(5)), ones / zeros for norms, ``LearnableAPE`` truncated normal
    (std 0.02). Every paper model trains from this, and :meth:`init_weights` without ``init_cfg`` leaves it untouched
    (the Runner calls it at the start of training; re-drawing here would change every seeded result).
    ``init_cfg`` applies mmengine initialisers on top, e.g. ``dict(type='TruncNormal', layer='Linear', std=0.02)`` or
    ``dict(type='Pretrained', checkpoint='enc.pth')``.

    Args:
        init_cfg: mmengine weight-initialisation config(s), or ``None`` for the construction-time weights.
    """

    def __init__(self, init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg)


class EncoderBase(_BackboneBase):
    """An image encoder ``(B, 3, H, W) -> (B, 2d, H/f, W/f)`` (mean and log-variance stacked on channels).

    Subclasses set ``downsample_factor`` (f), ``latent_channels`` (d) and return their last conv from
    ``get_last_layer()`` (the weight the VF loss's adaptive weight differentiates against).
    """

    downsample_factor: int
    latent_channels: int

    def get_last_layer(self) -> nn.Parameter:
        raise NotImplementedError


class DecoderBase(_BackboneBase):
    """A latent decoder ``(B, d, h, w) -> (B, 3, f*h, f*w)`` in ``[-1, 1]`` (linear output).

    ``get_last_layer()`` returns the final conv weight (for the GAN's adaptive weight).
    """

    upsample_factor: int
    latent_channels: int

    def get_last_layer(self) -> nn.Parameter:
        raise NotImplementedError
