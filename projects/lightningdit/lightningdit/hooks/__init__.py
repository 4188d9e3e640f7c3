from .latent_data_check_hook import LatentDataCheckHook, check_latent_data
from .sample_grid_hook import LatentSampleGridHook

__all__ = ['LatentDataCheckHook', 'LatentSampleGridHook', 'check_latent_data']
