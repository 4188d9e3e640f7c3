from .column_first_ape import ColumnFirstSinCosAPE, column_first_sincos_table
from .dit_block import FinalLayer, LightningDiTBlock, modulate
from .embeddings import LabelEmbedder, TimestepEmbedder
from .flow_model import LatentDataPreprocessor, LatentFlowModel, seeded_noise
from .lightningdit import ARCHS, LightningDiT
from .official_keys import (OFFICIAL_ARCHS, OfficialCheckpointError, convert_official_state_dict,
                            official_backbone_config, select_weights)

__all__ = ['ARCHS', 'ColumnFirstSinCosAPE', 'FinalLayer', 'LabelEmbedder', 'LatentDataPreprocessor', 'LatentFlowModel',
           'LightningDiT', 'LightningDiTBlock', 'OFFICIAL_ARCHS', 'OfficialCheckpointError', 'TimestepEmbedder',
           'column_first_sincos_table', 'convert_official_state_dict', 'modulate', 'official_backbone_config',
           'seeded_noise', 'select_weights']
