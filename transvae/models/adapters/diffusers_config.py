"""A diffusers ``AutoencoderKL`` ``config.json`` <-> our CNN-VAE model config, and its latent normalisation.

diffusers describes the LDM architecture by ``block_out_channels`` / ``layers_per_block`` / ``down_block_types`` /
``up_block_types`` / ``norm_num_groups`` / ``latent_channels`` / ``use_quant_conv`` / ``use_post_quant_conv`` /
``mid_block_add_attention``; our ``VAE`` with ``CNNEncoder`` / ``CNNDecoder`` by ``base_channels`` ``x``
``channel_mults``, ``num_res_blocks``, ``attn_levels`` (``Attn*Block2D`` levels, per side when the encoder and decoder
differ), ``mid_attn``, ``norm_cfg=GN(num_groups)`` and the encoder's ``quant_conv`` / the decoder's
``post_quant_conv``. Diffusion pipelines normalise latents as ``(z - shift_factor) * scaling_factor`` (SDXL-style
configs: ``(z - latents_mean) * scaling_factor / latents_std`` per channel); the VAE keeps that in its
``latent_mean`` / ``latent_std`` buffers (``VAE.normalize_latent``: ``(z - mean) / std``): mean = shift, std =
1 / scaling (per channel).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..blocks.attn_block import AttnBlock
from ..blocks.resblock import ResBlock
from .ldm_state_dict import ConversionError, cnn_vae_parts

__all__ = ['native_config_from_diffusers', 'latent_stats_from_diffusers', 'diffusers_config_from_native',
           'SUPPORTED_DIFFUSERS_KEYS']

_DOWN, _ATTN_DOWN = 'DownEncoderBlock2D', 'AttnDownEncoderBlock2D'
_UP, _ATTN_UP = 'UpDecoderBlock2D', 'AttnUpDecoderBlock2D'
#: the ``AutoencoderKL`` config keys this conversion reads (others that change the model are refused, by name)
SUPPORTED_DIFFUSERS_KEYS = ('in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels',
                            'layers_per_block', 'act_fn', 'latent_channels', 'norm_num_groups', 'sample_size',
                            'scaling_factor', 'shift_factor', 'latents_mean', 'latents_std', 'force_upcast',
                            'use_quant_conv', 'use_post_quant_conv', 'mid_block_add_attention')
#: keys that change nothing in the model's function
_INERT_KEYS = ('sample_size', 'force_upcast')
#: significant digits kept when a factor comes back from a float32 buffer (1 / float32(1 / 0.18215) = 0.18215000...)
_FACTOR_DIGITS = 7


def _attn_levels(types: Sequence[str], plain: str, attn: str, what: str) -> list[int]:
    bad = [t for t in types if t not in (plain, attn)]
    if bad:
        raise ConversionError(f'{what}: {bad} cannot be converted (supported: {plain}, {attn})')
    return [i for i, t in enumerate(types) if t == attn]


def native_config_from_diffusers(cfg: Mapping[str, Any], name: str = 'config.json') -> dict:
    """Our ``VAE`` model config (plain dict: ``type``, ``arch``, ``encoder``, ``decoder``) for a diffusers
    ``AutoencoderKL`` config dict; :class:`ConversionError` naming any key or value we cannot express."""
    if cfg.get('_class_name', 'AutoencoderKL') != 'AutoencoderKL':
        raise ConversionError(f"{name}: _class_name {cfg['_class_name']!r} is not AutoencoderKL (only diffusers' "
                              'AutoencoderKL, the SD / SDXL / SD3.5 / FLUX VAE, converts to the CNN-VAE)')
    unknown = sorted(k for k in cfg if not k.startswith('_') and k not in SUPPORTED_DIFFUSERS_KEYS)
    if unknown:
        raise ConversionError(f'{name}: unsupported AutoencoderKL options {unknown} (supported: '
                              f'{", ".join(SUPPORTED_DIFFUSERS_KEYS)})')
    if cfg.get('act_fn', 'silu') != 'silu':
        raise ConversionError(f"{name}: act_fn {cfg['act_fn']!r}: only 'silu' (LDM's) is supported")
    boc = [int(c) for c in cfg.get('block_out_channels', (64,))]
    n = len(boc)
    if any(c % boc[0] for c in boc):
        raise ConversionError(f'{name}: block_out_channels {boc} are not multiples of the first width; the CNN-VAE '
                              'builds its widths as base_channels x channel_mults')
    down = list(cfg.get('down_block_types', (_DOWN,)))
    up = list(cfg.get('up_block_types', (_UP,)))
    if len(down) != n or len(up) != n:
        raise ConversionError(f'{name}: {len(down)} down_block_types and {len(up)} up_block_types for {n} '
                              'block_out_channels')
    enc_attn = _attn_levels(down, _DOWN, _ATTN_DOWN, f'{name}: down_block_types')
    # up_blocks run from the lowest resolution up: up block k is our channel level n-1-k
    dec_attn = sorted(n - 1 - k for k in _attn_levels(up, _UP, _ATTN_UP, f'{name}: up_block_types'))
    groups = int(cfg.get('norm_num_groups', 32))
    if any(c % groups for c in boc):
        raise ConversionError(f'{name}: norm_num_groups {groups} does not divide block_out_channels {boc}')
    arch = dict(base_channels=boc[0], channel_mults=[c // boc[0] for c in boc],
                num_res_blocks=int(cfg.get('layers_per_block', 1)), latent_channels=int(cfg.get('latent_channels', 4)),
                attn_levels=enc_attn, mid_attn=bool(cfg.get('mid_block_add_attention', True)),
                norm_cfg=dict(type='GN', num_groups=groups))
    encoder = dict(type='CNNEncoder', down_cfg=dict(type='StridedConvDown'), in_channels=int(cfg.get('in_channels', 3)),
                   quant_conv=bool(cfg.get('use_quant_conv', True)))
    decoder = dict(type='CNNDecoder', up_cfg=dict(type='InterpConvUp'), out_channels=int(cfg.get('out_channels', 3)),
                   post_quant_conv=bool(cfg.get('use_post_quant_conv', True)))
    if dec_attn != enc_attn:  # our encoder and decoder take their own attn_levels over the shared one
        decoder['attn_levels'] = dec_attn
    return dict(type='VAE', arch=arch, encoder=encoder, decoder=decoder)


def latent_stats_from_diffusers(cfg: Mapping[str, Any], latent_channels: int,
                                name: str = 'config.json') -> tuple[list[float], list[float]]:
    """Per-channel ``(mean, std)`` for ``VAE.set_latent_stats``: mean = ``shift_factor`` (or ``latents_mean``), std =
    ``1 / scaling_factor`` (or ``latents_std / scaling_factor``); diffusers' default ``scaling_factor`` is 0.18215."""
    scaling = float(cfg.get('scaling_factor') or 0.18215)
    shift = float(cfg.get('shift_factor') or 0.0)
    mean, std = cfg.get('latents_mean'), cfg.get('latents_std')
    for key, val in (('latents_mean', mean), ('latents_std', std)):
        if val is not None and len(val) != latent_channels:
            raise ConversionError(f'{name}: {key} has {len(val)} values for {latent_channels} latent channels')
    if mean is not None and shift:
        raise ConversionError(f'{name}: both latents_mean and shift_factor are set; diffusers pipelines use one')
    means = [float(m) for m in mean] if mean is not None else [shift] * latent_channels
    stds = [float(s) / scaling for s in std] if std is not None else [1.0 / scaling] * latent_channels
    return means, stds


def _factor(x: float) -> float:
    return float(f'{x:.{_FACTOR_DIGITS}g}')


def diffusers_config_from_native(model: nn.Module, sample_size: int = 256) -> dict:
    """The diffusers ``AutoencoderKL`` config of a built CNN-VAE ``model`` (its latent statistics as
    ``scaling_factor`` / ``shift_factor``, or per channel as ``latents_mean`` / ``latents_std`` with
    ``scaling_factor`` 1 when they differ between channels).

    Args:
        model: a ``VAE`` with ``CNNEncoder`` / ``CNNDecoder`` (:func:`~.ldm_state_dict.cnn_vae_parts` checks it).
        sample_size: diffusers' ``sample_size`` (the image size its tiling starts at; no effect on the weights).
    """
    enc, dec = cnn_vae_parts(model)
    n = len(enc.levels)
    widths = [level.blocks[0].conv1.out_channels for level in enc.levels]

    def has_attn(level: nn.Module) -> bool:
        return any(isinstance(b, AttnBlock) for b in level.blocks)

    res_per_level = {sum(isinstance(b, ResBlock) for b in lv.blocks) for lv in enc.levels}
    dec_res = {sum(isinstance(b, ResBlock) for b in lv.blocks) for lv in dec.levels}
    groups = {m.num_groups for name, m in model.named_modules()
              if name.startswith(('encoder.', 'decoder.')) and isinstance(m, nn.GroupNorm)}
    mid_attn = {isinstance(bb.mid[1], AttnBlock) for bb in (enc, dec)}
    problems = []
    if len(res_per_level) != 1 or dec_res != {next(iter(res_per_level)) + 1}:
        problems.append(f'ResBlocks per level {sorted(res_per_level)} (encoder), {sorted(dec_res)} (decoder): '
                        'diffusers has layers_per_block in the encoder and one more in the decoder')
    if len(groups) != 1:
        problems.append(f'GroupNorm group counts {sorted(groups)}: diffusers has one norm_num_groups')
    if len(mid_attn) != 1:
        problems.append('mid-block attention on one side only')
    if problems:
        raise ConversionError('the model cannot be written as a diffusers AutoencoderKL: ' + '; '.join(problems))
    mean = model.latent_mean.detach().double().cpu()
    std = model.latent_std.detach().double().cpu()
    cfg: dict[str, Any] = {
        '_class_name': 'AutoencoderKL',
        'act_fn': 'silu',
        'block_out_channels': widths,
        'down_block_types': [_ATTN_DOWN if has_attn(lv) else _DOWN for lv in enc.levels],
        'up_block_types': [_ATTN_UP if has_attn(lv) else _UP for lv in dec.levels],
        'in_channels': enc.in_channels,
        'out_channels': dec.conv_out.out_channels,
        'latent_channels': enc.latent_channels,
        'layers_per_block': next(iter(res_per_level)),
        'norm_num_groups': next(iter(groups)),
        'mid_block_add_attention': next(iter(mid_attn)),
        'use_quant_conv': enc.quant_conv is not None,
        'use_post_quant_conv': dec.post_quant_conv is not None,
        'sample_size': int(sample_size),
        'force_upcast': True,
    }
    assert len(cfg['down_block_types']) == n
    if bool((mean == mean[0]).all()) and bool((std == std[0]).all()):
        cfg['scaling_factor'] = _factor(1.0 / float(std[0]))
        cfg['shift_factor'] = _factor(float(mean[0])) if float(mean[0]) != 0.0 else None
    else:
        cfg.update(scaling_factor=1.0, shift_factor=None, latents_mean=[_factor(v) for v in mean.tolist()],
                   latents_std=[_factor(v) for v in std.tolist()])
    return cfg
