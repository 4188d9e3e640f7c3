from .class_balanced_noise import ClassBalancedNoiseDataset, class_balanced_labels
from .class_balanced_sampler import ClassBalancedSampler
from .latent_dataset import LatentShardDataset, ShardGroupedSampler, list_shards
from .normalization import STATS_FILE, LatentNormalizer

__all__ = ['ClassBalancedNoiseDataset', 'ClassBalancedSampler', 'LatentNormalizer', 'LatentShardDataset', 'STATS_FILE',
           'ShardGroupedSampler', 'class_balanced_labels', 'list_shards']
