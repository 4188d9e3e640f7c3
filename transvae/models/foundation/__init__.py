"""Frozen foundation models (VF-loss targets): DINOv2 from a local file, and the offline VGG16 proxy."""
from .base import FrozenFoundationModel
from .dinov2 import DINOv2
from .vgg import VGG16Proxy

__all__ = ['FrozenFoundationModel', 'DINOv2', 'VGG16Proxy']
