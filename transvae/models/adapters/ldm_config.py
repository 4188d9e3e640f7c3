"""An original LDM / VA-VAE autoencoder config (``ddconfig`` + ``embed_dim``) -> our CNN-VAE model config.

LDM's ``ldm.models.autoencoder.AutoencoderKL`` takes ``ddconfig`` (``ch``, ``ch_mult``, ``num_res_blocks``,
``attn_resolutions`` with ``resolution``, ``z_channels``, ``double_z``, ``in_channels``, ``out_ch``, ``attn_type``,
``dropout``) and ``embed_dim`` (the width of ``quant_conv`` / ``post_quant_conv``, which every LDM autoencoder has).
Attention is placed by resolution there (level ``i`` has it when ``resolution / 2**i`` is in ``attn_resolutions``),
by level index here (``attn_levels``). The architecture can also be read off a state dict
(:func:`native_config_from_ldm_state_dict`): widths from the conv shapes, depths and attention from the keys; only
the GroupNorm group count (32 in every LDM model) is not in the weights.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from .ldm_state_dict import ConversionError

__all__ = ['native_config_from_ldm', 'native_config_from_ldm_state_dict', 'ldm_autoencoder_params']

#: ddconfig keys that must keep these values (an LDM variant we do not implement otherwise)
_FIXED = {'double_z': True, 'give_pre_end': False, 'tanh_out': False, 'resamp_with_conv': True,
          'use_linear_attn': False}
_KNOWN = ('ch', 'ch_mult', 'num_res_blocks', 'attn_resolutions', 'resolution', 'z_channels', 'in_channels', 'out_ch',
          'dropout', 'attn_type', *_FIXED)


def _native(ch: int, ch_mult: list[int], num_res_blocks: int, z_channels: int, attn_levels: list[int],
            mid_attn: bool, in_channels: int, out_channels: int, norm_groups: int, quant_convs: bool = True) -> dict:
    return dict(type='VAE',
                arch=dict(base_channels=ch, channel_mults=ch_mult, num_res_blocks=num_res_blocks,
                          latent_channels=z_channels, attn_levels=attn_levels, mid_attn=mid_attn,
                          norm_cfg=dict(type='GN', num_groups=norm_groups)),
                encoder=dict(type='CNNEncoder', down_cfg=dict(type='StridedConvDown'), in_channels=in_channels,
                             quant_conv=quant_convs),
                decoder=dict(type='CNNDecoder', up_cfg=dict(type='InterpConvUp'), out_channels=out_channels,
                             post_quant_conv=quant_convs))


def native_config_from_ldm(ddconfig: Mapping[str, Any], embed_dim: int | None = None, norm_groups: int = 32,
                           name: str = 'ddconfig') -> dict:
    """Our ``VAE`` model config for LDM's ``AutoencoderKL(ddconfig, embed_dim)``.

    Raises:
        ConversionError: an option we do not implement (``double_z: false``, ``tanh_out``, linear attention, an
            ``embed_dim`` other than ``z_channels``, ...), or an unknown ``ddconfig`` key.
    """
    unknown = sorted(k for k in ddconfig if k not in _KNOWN)
    if unknown:
        raise ConversionError(f'{name}: unknown ddconfig keys {unknown} (known: {", ".join(_KNOWN)})')
    bad = [f'{k}: {ddconfig[k]!r}' for k, v in _FIXED.items() if k in ddconfig and bool(ddconfig[k]) != v]
    attn_type = ddconfig.get('attn_type', 'vanilla')
    if attn_type not in ('vanilla', 'vanilla-xformers', 'none'):
        bad.append(f'attn_type: {attn_type!r}')
    z = int(ddconfig['z_channels'])
    if embed_dim is not None and int(embed_dim) != z:
        bad.append(f'embed_dim {embed_dim} != z_channels {z} (our quant convs keep the latent width)')
    if bad:
        raise ConversionError(f'{name}: not convertible to the CNN-VAE: {", ".join(bad)}')
    mult = [int(m) for m in ddconfig['ch_mult']]
    res = int(ddconfig.get('resolution', 256))
    attn_res = {int(r) for r in ddconfig.get('attn_resolutions', ())}
    attn_levels = [] if attn_type == 'none' else [i for i in range(len(mult)) if res // 2 ** i in attn_res]
    return _native(int(ddconfig['ch']), mult, int(ddconfig['num_res_blocks']), z, attn_levels, attn_type != 'none',
                   int(ddconfig.get('in_channels', 3)), int(ddconfig.get('out_ch', 3)), norm_groups)


def native_config_from_ldm_state_dict(state: Mapping[str, Tensor], norm_groups: int = 32,
                                      name: str = 'the checkpoint') -> dict:
    """Our ``VAE`` model config read off an LDM state dict (``encoder.down.{i}.block.{j}...`` keys, prefix and
    training keys already removed): ``ch`` and widths from ``encoder.down.{i}.block.0.conv1``, ``num_res_blocks``
    from the block indices, stage attention from ``encoder.down.{i}.attn`` / ``decoder.up.{i}.attn``, mid
    attention from ``encoder.mid.attn_1``, ``z_channels`` from ``decoder.conv_in``, the quant convs where
    ``quant_conv.weight`` is present."""
    need = ('encoder.conv_in.weight', 'decoder.conv_in.weight', 'decoder.conv_out.weight',
            'encoder.down.0.block.0.conv1.weight')
    missing = [k for k in need if k not in state]
    if missing:
        raise ConversionError(f'{name} is not an LDM autoencoder state dict: no {", ".join(missing)} (expected '
                              'keys such as encoder.down.0.block.0.conv1.weight, quant_conv.weight)')
    levels: dict[int, set[int]] = {}
    enc_attn: set[int] = set()
    dec_attn: set[int] = set()
    for k in state:
        m = re.match(r'encoder\.down\.(\d+)\.(block|attn)\.(\d+)\.', k)
        if m:
            if m.group(2) == 'block':
                levels.setdefault(int(m.group(1)), set()).add(int(m.group(3)))
            else:
                enc_attn.add(int(m.group(1)))
        m = re.match(r'decoder\.up\.(\d+)\.attn\.', k)
        if m:
            dec_attn.add(int(m.group(1)))
    n = len(levels)
    if sorted(levels) != list(range(n)) or n == 0:
        raise ConversionError(f'{name}: encoder.down levels {sorted(levels)} are not 0..n-1')
    depth = {len(v) for v in levels.values()}
    if len(depth) != 1:
        raise ConversionError(f'{name}: the encoder levels hold different numbers of ResBlocks {sorted(depth)}')
    ch = int(state['encoder.conv_in.weight'].shape[0])
    widths = [int(state[f'encoder.down.{i}.block.0.conv1.weight'].shape[0]) for i in range(n)]
    if any(w % ch for w in widths):
        raise ConversionError(f'{name}: level widths {widths} are not multiples of ch {ch}')
    cfg = _native(ch, [w // ch for w in widths], depth.pop(), int(state['decoder.conv_in.weight'].shape[1]),
                  sorted(enc_attn), 'encoder.mid.attn_1.q.weight' in state,
                  int(state['encoder.conv_in.weight'].shape[1]), int(state['decoder.conv_out.weight'].shape[0]),
                  norm_groups, quant_convs='quant_conv.weight' in state)
    if dec_attn != enc_attn:
        cfg['decoder']['attn_levels'] = sorted(dec_attn)
    return cfg


def ldm_autoencoder_params(cfg: Mapping[str, Any], name: str = 'the LDM config') -> tuple[dict, float | None]:
    """``(autoencoder params, scale_factor)`` of a loaded LDM yaml: an autoencoder config (``model.params`` with
    ``ddconfig``: LDM's ``autoencoder_kl_*.yaml``, VA-VAE's ``vavae_f16d32.yaml``) or a latent-diffusion config
    (``model.params.first_stage_config.params``, with the diffusion model's ``model.params.scale_factor``; SD's
    ``v1-inference.yaml``). ``scale_factor`` is ``None`` where the file has none."""
    params = cfg.get('model', {}).get('params') if isinstance(cfg.get('model'), Mapping) else None
    if not isinstance(params, Mapping):
        raise ConversionError(f'{name} has no model.params (an LDM / VA-VAE autoencoder or latent-diffusion yaml)')
    if 'ddconfig' in params:
        return dict(params), None
    first = params.get('first_stage_config', {})
    inner = first.get('params') if isinstance(first, Mapping) else None
    if isinstance(inner, Mapping) and 'ddconfig' in inner:
        scale = params.get('scale_factor')
        return dict(inner), (float(scale) if scale is not None else None)
    raise ConversionError(f'{name}: neither model.params.ddconfig nor model.params.first_stage_config.params.ddconfig '
                          'found')
