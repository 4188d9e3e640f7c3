from .class_balanced_noise import ClassBalancedNoiseDataset, class_balanced_labels
from .latent_dataset import LatentShardDataset, ShardGroupedSampler, list_shards
from .normalization import STATS_FILE, LatentNormalizer

__all__ = ['ClassBalancedNoiseDataset', 'LatentNormalizer', 'LatentShardDataset', 'STATS_FILE', 'ShardGroupedSampler',
           'class_balanced_labels', 'list_shards']
