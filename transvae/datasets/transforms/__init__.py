"""Data transforms (registered in ``transvae.registry.TRANSFORMS``)."""
from .formatting import PackVAEInputs
from .loading import LoadImageRGB, decode_image_rgb, pil_to_rgb_array
from .processing import CenterCrop, RandomCrop, RandomFlip, RandomResizedCrop, ResizeShortSide, resize_image

__all__ = [
    'LoadImageRGB', 'decode_image_rgb', 'pil_to_rgb_array', 'ResizeShortSide', 'CenterCrop', 'RandomCrop',
    'RandomResizedCrop', 'RandomFlip', 'resize_image', 'PackVAEInputs'
]
