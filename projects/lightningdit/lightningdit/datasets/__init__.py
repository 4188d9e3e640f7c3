from .latent_dataset import LatentShardDataset, ShardGroupedSampler, list_shards
from .normalization import STATS_FILE, LatentNormalizer

__all__ = ['LatentNormalizer', 'LatentShardDataset', 'STATS_FILE', 'ShardGroupedSampler', 'list_shards']
