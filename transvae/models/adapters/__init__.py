"""Adapters between transvae models and other formats: public LDM-architecture VAEs (diffusers ``AutoencoderKL``,
original LDM / VA-VAE) converted to and from our CNN-VAE, and a transvae VAE as a diffusers pipeline's ``vae``."""
from .autoencoder_kl import ldm_state_dict_of, vae_from_diffusers, vae_from_ldm, vae_to_diffusers
from .diffusers_config import diffusers_config_from_native, latent_stats_from_diffusers, native_config_from_diffusers
from .diffusers_vae import DiffusersVAEWrapper
from .ldm_config import ldm_autoencoder_params, native_config_from_ldm, native_config_from_ldm_state_dict
from .ldm_state_dict import (ConversionError, StateDictKeyError, diffusers_key_map, from_diffusers_state_dict,
                             from_ldm_state_dict, ldm_key_map, to_diffusers_state_dict, to_ldm_state_dict)
from .public_vaes import DIFFUSERS_VAE_CONFIGS, LDM_VAE_CONFIGS

__all__ = ['vae_from_diffusers', 'vae_from_ldm', 'vae_to_diffusers', 'ldm_state_dict_of',
           'native_config_from_diffusers', 'latent_stats_from_diffusers', 'diffusers_config_from_native',
           'native_config_from_ldm', 'native_config_from_ldm_state_dict', 'ldm_autoencoder_params', 'ConversionError', 'StateDictKeyError',
           'diffusers_key_map', 'ldm_key_map', 'to_diffusers_state_dict', 'from_diffusers_state_dict',
           'to_ldm_state_dict', 'from_ldm_state_dict', 'DIFFUSERS_VAE_CONFIGS', 'LDM_VAE_CONFIGS',
           'DiffusersVAEWrapper']
