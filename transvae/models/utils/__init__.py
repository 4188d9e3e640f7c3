"""Model-level switches that trade nothing in the outputs for speed / memory (channels-last, autocast, SDPA backend,
``torch.compile``, gradient checkpointing)."""
from .speed import (amp_dtype, apply_channels_last, autocast, compile_autoencoder, sdpa_backend,
                    set_grad_checkpointing, to_channels_last)

__all__ = ['amp_dtype', 'apply_channels_last', 'autocast', 'compile_autoencoder', 'sdpa_backend',
           'set_grad_checkpointing', 'to_channels_last']
