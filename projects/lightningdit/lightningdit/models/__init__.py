from .dit_block import FinalLayer, LightningDiTBlock, modulate
from .embeddings import LabelEmbedder, TimestepEmbedder
from .flow_model import LatentDataPreprocessor, LatentFlowModel, seeded_noise
from .lightningdit import ARCHS, LightningDiT

__all__ = ['ARCHS', 'FinalLayer', 'LabelEmbedder', 'LatentDataPreprocessor', 'LatentFlowModel', 'LightningDiT',
           'LightningDiTBlock', 'TimestepEmbedder', 'modulate', 'seeded_noise']
