from .decoder import FrozenLatentDecoder
from .generation_fid import (center_crop_image, check_reference, fid_against, folder_features, load_reference_npz,
                             reference_statistics)
from .generation_fid_metric import GenerationFIDMetric
from .report import generation_fid_report, generation_protocol, render_generation_fid_report

__all__ = ['FrozenLatentDecoder', 'GenerationFIDMetric', 'center_crop_image', 'check_reference', 'fid_against',
           'folder_features', 'generation_fid_report', 'generation_protocol', 'load_reference_npz',
           'reference_statistics', 'render_generation_fid_report']
