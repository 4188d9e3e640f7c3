"""Offline pretrained weights shipped in registry packages (sha256-verified, loaded without running pickled code)."""
from .offline_weights import (LPIPS_BACKBONE_LAYERS, SHA256, OfflineWeightsError, RestrictedNumpyUnpickler,
                              find_package_file, load_fid_inception, load_lpips_backbone, load_lpips_heads,
                              verify_sha256)

__all__ = [
    'LPIPS_BACKBONE_LAYERS', 'SHA256', 'OfflineWeightsError', 'RestrictedNumpyUnpickler', 'find_package_file',
    'load_fid_inception', 'load_lpips_backbone', 'load_lpips_heads', 'verify_sha256'
]
