"""Evaluation: functional image metrics and MMEngine metrics (PSNR, SSIM, LPIPS, rFID)."""
from . import functional  # noqa: F401
from .metrics import BaseReconstructionMetric, FIDMetric, LPIPSMetric, PSNRMetric, SSIMMetric

__all__ = ['functional', 'BaseReconstructionMetric', 'PSNRMetric', 'SSIMMetric', 'LPIPSMetric', 'FIDMetric']
