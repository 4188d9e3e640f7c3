from .sample_grid_hook import LatentSampleGridHook

__all__ = ['LatentSampleGridHook']
