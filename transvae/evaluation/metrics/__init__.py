"""Evaluation metrics (registered in ``transvae.registry.METRICS``)."""
from .base import BaseReconstructionMetric
from .fid import FIDMetric
from .image_quality import LPIPSMetric, PSNRMetric, SSIMMetric

__all__ = ['BaseReconstructionMetric', 'PSNRMetric', 'SSIMMetric', 'LPIPSMetric', 'FIDMetric']
from .rec_loss_metric import ReconstructionLossMetric  # noqa: F401,E402
