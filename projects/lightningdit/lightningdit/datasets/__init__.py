from .class_balanced_noise import ClassBalancedNoiseDataset, class_balanced_labels
from .class_balanced_sampler import ClassBalancedSampler
from .latent_dataset import LatentShardDataset, ShardGroupedSampler
from .normalization import LatentNormalizer

# the shard format (list_shards, STATS_FILE, ...) is transvae.utils.latent_shards'
__all__ = ['ClassBalancedNoiseDataset', 'ClassBalancedSampler', 'LatentNormalizer', 'LatentShardDataset',
           'ShardGroupedSampler', 'class_balanced_labels']
