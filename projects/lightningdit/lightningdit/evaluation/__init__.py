from .decoder import FrozenLatentDecoder
from .generation_fid import (center_crop_image, class_balanced_labels, fid_against, folder_features,
                             load_reference_npz, reference_statistics)
from .report import build_report, protocol, render_markdown, write_report
from .sampling import generate_features

__all__ = ['FrozenLatentDecoder', 'build_report', 'center_crop_image', 'class_balanced_labels', 'fid_against',
           'folder_features', 'generate_features', 'load_reference_npz', 'protocol', 'reference_statistics',
           'render_markdown', 'write_report']
