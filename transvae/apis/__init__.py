"""High-level API: load a model, encode / decode / reconstruct images of any size (tiled when asked); the training
command line (:mod:`transvae.apis.train_cli`, imported by ``tools/train.py``, not re-exported here)."""
from .inference import decode, encode, init_model, reconstruct, to_image_tensor

# Tiling is a model capability (VAE.enable_tiling / tiled_encode / tiled_decode, transvae.models.autoencoders.tiling).
__all__ = ['init_model', 'encode', 'decode', 'reconstruct', 'to_image_tensor']
