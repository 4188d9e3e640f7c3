"""Adapters that run third-party autoencoders through the transvae ``VAE`` interface (no third-party import)."""
from .diffusers_kl import (DiffusersAutoencoderKL, DiffusersKLDecoder, DiffusersKLEncoder,
                           convert_diffusers_state_dict)

__all__ = ['DiffusersAutoencoderKL', 'DiffusersKLEncoder', 'DiffusersKLDecoder', 'convert_diffusers_state_dict']
from .diffusers_vae import DiffusersVAEWrapper  # noqa: E402

__all__ += ['DiffusersVAEWrapper']
