"""Data transforms (registered in ``transvae.registry.TRANSFORMS``)."""
from .formatting import PackVAEInputs
from .loading import (DEFAULT_MAX_PIXELS, ImageTooLargeError, LoadImageRGB, LoadImageRGBDraft, check_image_pixels,
                      decode_image_rgb, pil_to_rgb_array)
from .processing import CenterCrop, RandomCrop, RandomFlip, RandomResizedCrop, ResizeShortSide, resize_image

__all__ = [
    'LoadImageRGB', 'LoadImageRGBDraft', 'decode_image_rgb', 'pil_to_rgb_array', 'DEFAULT_MAX_PIXELS',
    'ImageTooLargeError', 'check_image_pixels', 'ResizeShortSide', 'CenterCrop', 'RandomCrop',
    'RandomResizedCrop', 'RandomFlip', 'resize_image', 'PackVAEInputs'
]
