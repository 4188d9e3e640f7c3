"""Functional image metrics (per image, on uint8-quantised images) and FID building blocks."""
from .fid import (FID_PROTOCOL, FeaturePassThrough, FIDInceptionV3, feature_statistics, fid_from_features,
                  frechet_distance, get_fid_inception, project_to_common_subspace)
from .image_quality import gaussian_kernel1d, lpips, psnr, quantize_uint8, ssim

__all__ = [
    'psnr', 'ssim', 'lpips', 'quantize_uint8', 'gaussian_kernel1d', 'FID_PROTOCOL', 'FIDInceptionV3',
    'FeaturePassThrough', 'get_fid_inception', 'feature_statistics', 'frechet_distance', 'fid_from_features',
    'project_to_common_subspace'
]
