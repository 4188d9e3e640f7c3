"""Public LDM-architecture VAEs in and out of our CNN-VAE: diffusers ``AutoencoderKL`` and original LDM / VA-VAE.

There is one implementation of the architecture, ours (``VAE`` with ``CNNEncoder`` / ``CNNDecoder``); these
functions only move weights and configs (file reading and writing is the converters', ``tools/model_converters/``):

* :func:`vae_from_diffusers`: a diffusers VAE's ``config.json`` dict + state dict -> our model (weights, and the
  latent normalisation as ``latent_mean`` / ``latent_std``) and its model config;
* :func:`vae_from_ldm`: an LDM / VA-VAE checkpoint's state dict (architecture from its ``ddconfig`` or read off the
  keys) -> our model, its config and the counts of the dropped training-only keys;
* :func:`vae_to_diffusers`: our CNN-VAE -> a diffusers ``config.json`` dict + state dict that diffusers'
  ``AutoencoderKL.from_pretrained`` loads.

Names: :mod:`.ldm_state_dict`; configs: :mod:`.diffusers_config`, :mod:`.ldm_config`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from transvae.registry import MODELS

from .diffusers_config import diffusers_config_from_native, latent_stats_from_diffusers, native_config_from_diffusers
from .ldm_config import native_config_from_ldm, native_config_from_ldm_state_dict
from .ldm_state_dict import (ConversionError, from_diffusers_state_dict, from_ldm_state_dict,
                             to_diffusers_state_dict)

__all__ = ['vae_from_diffusers', 'vae_from_ldm', 'vae_to_diffusers', 'ldm_state_dict_of']


def _build(model_cfg: dict, weights: Mapping[str, Tensor], mean: list[float], std: list[float]) -> nn.Module:
    model = MODELS.build(model_cfg)
    own = model.state_dict()
    # the converted weights keep their dtype (an fp16 file stays fp16 only if the model is made so: we load into
    # the float32 model, as diffusers' from_pretrained does by default)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in weights.items()}, strict=False)
    model.set_latent_stats(torch.tensor(mean), torch.tensor(std))
    return model.eval()


def vae_from_diffusers(config: Mapping[str, Any], state: Mapping[str, Tensor],
                       name: str = 'the diffusers VAE') -> tuple[nn.Module, dict]:
    """``(model, model_cfg)``: our CNN-VAE with a diffusers ``AutoencoderKL``'s weights and latent normalisation.

    Args:
        config: the VAE's ``config.json`` as a dict.
        state: its ``diffusion_pytorch_model`` state dict (every key must be used, every weight present).
        name: how the source is named in errors.

    Raises:
        ConversionError: a config option the CNN-VAE cannot express.
        StateDictKeyError: missing / unexpected keys or shapes (listed).
    """
    model_cfg = native_config_from_diffusers(config, name=f'{name} config.json')
    model = MODELS.build(model_cfg)
    weights = from_diffusers_state_dict(model, state, source=f'{name} weights')
    mean, std = latent_stats_from_diffusers(config, model.latent_channels, name=f'{name} config.json')
    return _build(model_cfg, weights, mean, std), model_cfg


def ldm_state_dict_of(ckpt: Mapping[str, Any], name: str = 'the checkpoint') -> dict[str, Tensor]:
    """The flat state dict of a loaded LDM / VA-VAE checkpoint: ``ckpt['state_dict']`` (PyTorch Lightning ``.ckpt``,
    VA-VAE ``.pt``), else ``ckpt`` itself; non-tensor entries are refused by name."""
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(sd, Mapping):
        raise ConversionError(f'{name} holds no state dict (a dict of tensors, or one under "state_dict")')
    bad = [k for k, v in sd.items() if not torch.is_tensor(v)]
    if bad:
        raise ConversionError(f'{name}: entries that are not tensors: {bad[:8]}: not an LDM state dict')
    return dict(sd)


def vae_from_ldm(state: Mapping[str, Tensor], ldm_config: Mapping[str, Any] | None = None, norm_groups: int = 32,
                 scaling_factor: float = 1.0, shift_factor: float = 0.0,
                 name: str = 'the LDM checkpoint') -> tuple[nn.Module, dict, dict[str, int]]:
    """``(model, model_cfg, dropped)``: our CNN-VAE with an original LDM / VA-VAE autoencoder's weights.

    Args:
        state: the flat state dict (:func:`ldm_state_dict_of`); a whole SD checkpoint's ``first_stage_model.`` keys
            are used, training keys (``loss.*`` ...) are dropped and counted in ``dropped``.
        ldm_config: ``{'ddconfig': ..., 'embed_dim': ...}`` (the autoencoder's ``model.params``); ``None``: the
            architecture is read off the state dict's keys and shapes.
        norm_groups: GroupNorm groups (32 in LDM; not stored in the weights).
        scaling_factor, shift_factor: the latent normalisation of the diffusion model that uses this VAE
            (``(z - shift) * scaling``; LDM yaml: ``scale_factor``), stored as ``latent_mean`` / ``latent_std``.
        name: how the source is named in errors.
    """
    if scaling_factor <= 0:
        raise ConversionError(f'scaling_factor must be > 0, got {scaling_factor}')
    prefix = next((p for p in ('first_stage_model.', 'vae.') if any(k.startswith(p) for k in state)), '')
    vae_keys = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if ldm_config is None:
        model_cfg = native_config_from_ldm_state_dict(vae_keys, norm_groups, name=name)
    else:
        if 'ddconfig' not in ldm_config:
            raise ConversionError(f'the LDM config of {name} has no ddconfig (expected the autoencoder\'s '
                                  'model.params: ddconfig + embed_dim)')
        model_cfg = native_config_from_ldm(ldm_config['ddconfig'], ldm_config.get('embed_dim'), norm_groups)
    model = MODELS.build(model_cfg)
    weights, dropped = from_ldm_state_dict(model, state, source=name)
    d = model.latent_channels
    return _build(model_cfg, weights, [float(shift_factor)] * d, [1.0 / float(scaling_factor)] * d), model_cfg, \
        dropped


def vae_to_diffusers(model: nn.Module, sample_size: int = 256) -> tuple[dict, dict[str, Tensor]]:
    """``(config.json dict, state dict)`` of diffusers' ``AutoencoderKL`` for our CNN-VAE ``model``
    (:class:`ConversionError` for any other model, naming what is supported)."""
    return diffusers_config_from_native(model, sample_size=sample_size), to_diffusers_state_dict(model)
