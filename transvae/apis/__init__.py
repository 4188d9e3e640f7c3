"""High-level API: load a model, encode / decode / reconstruct images of any size (tiled when asked);
``register_all_modules``; the entry layer every command goes through (:mod:`transvae.apis.entry`: load a config,
build a runner, build a model) and the command lines behind ``tools/train.py``, ``tools/test.py`` and
``tools/extract_latents.py`` (:mod:`~transvae.apis.train_cli`, :mod:`~transvae.apis.test_cli`,
:mod:`~transvae.apis.extract_latents_cli`; not re-exported here, they import the engine)."""
from .inference import decode, encode, init_model, reconstruct, to_image_tensor
from .pretrained import from_pretrained, save_pretrained
from .setup_env import register_all_modules

# Tiling is a model capability (VAE.enable_tiling / tiled_encode / tiled_decode, transvae.models.autoencoders.tiling).
__all__ = ['init_model', 'encode', 'decode', 'reconstruct', 'to_image_tensor', 'register_all_modules',
           'save_pretrained', 'from_pretrained']
