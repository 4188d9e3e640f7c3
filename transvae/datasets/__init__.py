"""Datasets, transforms and collate functions (registered in the ``transvae`` scope)."""
from .collate import empty_batch, empty_batch_outputs, is_empty_batch, pop_skipped, push_skipped, skip_none_collate
from .errors import DataRootError, DataRootNotFoundError
from .image_folder import IMG_EXTENSIONS, ImageFolderDataset, scan_images
from .sample_photos import SamplePhotosDataset, prepare_sample_photos
from .split_image_folder import SplitImageFolderDataset
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all

__all__ = [
    'ImageFolderDataset', 'SamplePhotosDataset', 'SplitImageFolderDataset', 'DataRootError', 'DataRootNotFoundError',
    'prepare_sample_photos', 'IMG_EXTENSIONS', 'scan_images',
    'skip_none_collate', 'empty_batch', 'is_empty_batch', 'empty_batch_outputs', 'push_skipped', 'pop_skipped'
] + list(_transforms_all)
