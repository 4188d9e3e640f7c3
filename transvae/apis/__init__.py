"""High-level inference API: load a model, encode / decode / reconstruct images of any size (tiled when asked)."""
from .inference import decode, encode, init_model, reconstruct, to_image_tensor
from .tiling import (choose_tile, default_memory_budget_mb, estimate_peak_memory, tiled_decode, tiled_encode)

__all__ = ['init_model', 'encode', 'decode', 'reconstruct', 'to_image_tensor', 'tiled_encode', 'tiled_decode',
           'choose_tile', 'estimate_peak_memory', 'default_memory_budget_mb']
