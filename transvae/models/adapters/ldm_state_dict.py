"""The one weight-name map of the LDM / AutoencoderKL architecture: our CNN-VAE <-> diffusers <-> original LDM.

Our :class:`~transvae.models.backbones.cnn.CNNEncoder` / :class:`~transvae.models.backbones.cnn.CNNDecoder` compute
diffusers' ``AutoencoderKL`` and the original LDM ``Encoder`` / ``Decoder`` (``ldm/modules/diffusionmodules/model.py``,
also VA-VAE's); only the parameter names differ. Each map is read off a built model (:func:`cnn_vae_parts`), so
``skip`` convolutions (only where a ResBlock changes width), stage attention (any level) and the optional
``quant_conv`` / ``post_quant_conv`` come out exactly as the model has them:

=====================================  ===============================================  ===============================
ours (``VAE`` with CNN backbones)      diffusers ``AutoencoderKL``                      original LDM / VA-VAE
=====================================  ===============================================  ===============================
``encoder.levels.i.blocks.j``          ``encoder.down_blocks.i.resnets.r`` /            ``encoder.down.i.block.r`` /
  (ResBlock / AttnBlock interleaved)     ``.attentions.a``                                ``.attn.a``
``encoder.downs.i.conv``               ``encoder.down_blocks.i.downsamplers.0.conv``    ``encoder.down.i.downsample.conv``
``decoder.levels.k`` (k = 0 lowest)    ``decoder.up_blocks.k``                          ``decoder.up.{n-1-k}``
``decoder.ups.k.conv``                 ``decoder.up_blocks.k.upsamplers.0.conv``        ``decoder.up.{n-1-k}.upsample.conv``
``*.mid.0`` / ``.1`` / ``.2``          ``*.mid_block.resnets.0`` / ``attentions.0`` /   ``*.mid.block_1`` / ``attn_1`` /
                                         ``resnets.1``                                    ``block_2``
``*.norm_out``                         ``*.conv_norm_out``                              ``*.norm_out``
``encoder.quant_conv``                 ``quant_conv``                                   ``quant_conv``
``decoder.post_quant_conv``            ``post_quant_conv``                              ``post_quant_conv``
ResBlock ``skip``                      ``conv_shortcut``                                ``nin_shortcut``
AttnBlock ``norm, q, k, v, proj_out``  ``group_norm, to_q, to_k, to_v, to_out.0``       ``norm, q, k, v, proj_out``
=====================================  ===============================================  ===============================

Attention projections are 1x1 convolutions ``(C, C, 1, 1)`` here and in LDM, ``nn.Linear`` ``(C, C)`` in diffusers;
old diffusers files name them ``query`` / ``key`` / ``value`` / ``proj_attn`` and some store them conv-shaped. Every
tensor is reshaped to the shape its destination has, never transposed (a 1x1 conv and a Linear hold the same matrix).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from transvae.utils.errors import UserInputError

from ..backbones.cnn import CNNDecoder, CNNEncoder
from ..blocks.attn_block import AttnBlock
from ..blocks.resblock import ResBlock
from ..layers.norm import GroupNorm
from ..layers.sampling import InterpConvUp, StridedConvDown

__all__ = ['ConversionError', 'StateDictKeyError', 'cnn_vae_parts', 'diffusers_key_map', 'ldm_key_map',
           'to_diffusers_state_dict', 'from_diffusers_state_dict', 'to_ldm_state_dict', 'from_ldm_state_dict',
           'LDM_TRAINING_PREFIXES']

#: prefixes of LDM / VA-VAE training checkpoints that are no part of the autoencoder (the LPIPS + discriminator
#: loss, VA-VAE's frozen foundation model and its VF projection): dropped on import, and counted
LDM_TRAINING_PREFIXES = ('loss.', 'discriminator.', 'foundation_model.', 'linear_proj.', 'model_ema.')
#: prefixes under which whole Stable Diffusion checkpoints keep their VAE (diffusers' ``LDM_VAE_KEYS``)
_LDM_VAE_PREFIXES = ('first_stage_model.', 'vae.')

_RES_DIFFUSERS = {'norm1': 'norm1', 'conv1': 'conv1', 'norm2': 'norm2', 'conv2': 'conv2', 'skip': 'conv_shortcut'}
_RES_LDM = {'norm1': 'norm1', 'conv1': 'conv1', 'norm2': 'norm2', 'conv2': 'conv2', 'skip': 'nin_shortcut'}
_ATTN_DIFFUSERS = {'norm': 'group_norm', 'q': 'to_q', 'k': 'to_k', 'v': 'to_v', 'proj_out': 'to_out.0'}
_ATTN_LDM = {'norm': 'norm', 'q': 'q', 'k': 'k', 'v': 'v', 'proj_out': 'proj_out'}
#: diffusers' deprecated attention names (old ``AttentionBlock`` files) -> current ones
_DEPRECATED_DIFFUSERS_ATTN = {'query': 'to_q', 'key': 'to_k', 'value': 'to_v', 'proj_attn': 'to_out.0'}


class ConversionError(UserInputError, ValueError):
    """A model or file that the LDM / AutoencoderKL conversion cannot express (named, with what is supported)."""


class StateDictKeyError(UserInputError, KeyError):
    """A state dict whose keys do not fit the architecture: the missing and unexpected keys are listed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


@dataclass(frozen=True)
class _Place:
    """Where a module of ours sits in the LDM layout.

    ``part``: ``'encoder'`` / ``'decoder'``; ``kind``: ``'conv_in' | 'norm_out' | 'conv_out' | 'quant' | 'level_res' |
    'level_attn' | 'sampler' | 'mid_res' | 'mid_attn'``; ``level``: our level index (decoder: 0 = lowest resolution);
    ``index``: the ResBlock / AttnBlock number within the level (mid: 0 or 1 for its two ResBlocks).
    """

    part: str
    kind: str
    level: int = 0
    index: int = 0


def cnn_vae_parts(model: nn.Module) -> tuple[CNNEncoder, CNNDecoder]:
    """``(encoder, decoder)`` of ``model`` after checking that it is the LDM architecture these maps describe.

    Raises:
        ConversionError: not a VAE with ``CNNEncoder`` / ``CNNDecoder``, or with parts LDM / diffusers do not have
            (other samplers than ``StridedConvDown`` / ``InterpConvUp``, other norms than ``GN`` with eps 1e-6,
            ``double_z=False``).
    """
    enc, dec = getattr(model, 'encoder', None), getattr(model, 'decoder', None)
    if type(enc) is not CNNEncoder or type(dec) is not CNNDecoder:
        raise ConversionError(
            f'{type(model).__name__} with {type(enc).__name__} / {type(dec).__name__} is not an LDM / AutoencoderKL '
            'model: only a VAE with CNNEncoder and CNNDecoder (the CNN-VAE configs, configs/benchmarks/'
            '{sd,sdxl,sd35,flux}-vae_*.py, vavae_f16d32.py) converts to diffusers / LDM weights')
    bad = [f'encoder.downs.{i} ({type(m).__name__})' for i, m in enumerate(enc.downs) if type(m) is not StridedConvDown]
    bad += [f'decoder.ups.{i} ({type(m).__name__})' for i, m in enumerate(dec.ups) if type(m) is not InterpConvUp]
    for part, bb in (('encoder', enc), ('decoder', dec)):
        norms = {f'{part}.norm_out': bb.norm_out}
        for name, blk in bb.named_modules(prefix=part):
            if isinstance(blk, ResBlock):
                norms.update({f'{name}.norm1': blk.norm1, f'{name}.norm2': blk.norm2})
                bad += [f'{name}.{a} ({type(m).__name__})' for a, m in (('act1', blk.act1), ('act2', blk.act2))
                        if not isinstance(m, nn.SiLU)]
            elif isinstance(blk, AttnBlock):
                norms[f'{name}.norm'] = blk.norm
        bad += [f'{name} ({type(m).__name__}' + (f', eps {m.eps}' if isinstance(m, nn.GroupNorm) else '') + ')'
                for name, m in norms.items()
                if type(m) is not GroupNorm or m.eps != 1e-6 or not m.affine]
    if enc.conv_out.out_channels != 2 * enc.latent_channels:
        bad.append('encoder.conv_out (double_z=False)')
    if bad:
        raise ConversionError('the model has parts the LDM / AutoencoderKL architecture does not: ' + ', '.join(bad) +
                              ' (supported: down_cfg StridedConvDown, up_cfg InterpConvUp, norm_cfg GN with eps '
                              '1e-6, SiLU activations)')
    return enc, dec


def _places(model: nn.Module) -> Iterator[tuple[str, nn.Module, _Place]]:
    """``(our module prefix, module, place)`` for every weight-holding module of the encoder and decoder."""
    enc, dec = cnn_vae_parts(model)
    for part, bb in (('encoder', enc), ('decoder', dec)):
        yield f'{part}.conv_in', bb.conv_in, _Place(part, 'conv_in')
        for i, level in enumerate(bb.levels):
            r = a = 0
            for j, blk in enumerate(level.blocks):
                if isinstance(blk, AttnBlock):
                    yield f'{part}.levels.{i}.blocks.{j}', blk, _Place(part, 'level_attn', i, a)
                    a += 1
                else:
                    yield f'{part}.levels.{i}.blocks.{j}', blk, _Place(part, 'level_res', i, r)
                    r += 1
        for i, s in enumerate(bb.downs if part == 'encoder' else bb.ups):
            yield f'{part}.{"downs" if part == "encoder" else "ups"}.{i}.conv', s.conv, _Place(part, 'sampler', i)
        yield f'{part}.mid.0', bb.mid[0], _Place(part, 'mid_res', 0, 0)
        if isinstance(bb.mid[1], AttnBlock):
            yield f'{part}.mid.1', bb.mid[1], _Place(part, 'mid_attn')
        yield f'{part}.mid.2', bb.mid[2], _Place(part, 'mid_res', 0, 1)
        yield f'{part}.norm_out', bb.norm_out, _Place(part, 'norm_out')
        yield f'{part}.conv_out', bb.conv_out, _Place(part, 'conv_out')
    if enc.quant_conv is not None:
        yield 'encoder.quant_conv', enc.quant_conv, _Place('encoder', 'quant')
    if dec.post_quant_conv is not None:
        yield 'decoder.post_quant_conv', dec.post_quant_conv, _Place('decoder', 'quant')


def _diffusers_prefix(p: _Place, num_levels: int) -> str:
    block = 'down_blocks' if p.part == 'encoder' else 'up_blocks'
    return {
        'conv_in': f'{p.part}.conv_in', 'norm_out': f'{p.part}.conv_norm_out', 'conv_out': f'{p.part}.conv_out',
        'quant': 'quant_conv' if p.part == 'encoder' else 'post_quant_conv',
        'level_res': f'{p.part}.{block}.{p.level}.resnets.{p.index}',
        'level_attn': f'{p.part}.{block}.{p.level}.attentions.{p.index}',
        'sampler': f'{p.part}.{block}.{p.level}.{"downsamplers" if p.part == "encoder" else "upsamplers"}.0.conv',
        'mid_res': f'{p.part}.mid_block.resnets.{p.index}', 'mid_attn': f'{p.part}.mid_block.attentions.0',
    }[p.kind]


def _ldm_prefix(p: _Place, num_levels: int) -> str:
    # LDM's decoder.up is indexed by resolution level (0 = highest), ours by running order (0 = lowest)
    lvl = p.level if p.part == 'encoder' else num_levels - 1 - p.level
    block = 'down' if p.part == 'encoder' else 'up'
    return {
        'conv_in': f'{p.part}.conv_in', 'norm_out': f'{p.part}.norm_out', 'conv_out': f'{p.part}.conv_out',
        'quant': 'quant_conv' if p.part == 'encoder' else 'post_quant_conv',
        'level_res': f'{p.part}.{block}.{lvl}.block.{p.index}',
        'level_attn': f'{p.part}.{block}.{lvl}.attn.{p.index}',
        'sampler': f'{p.part}.{block}.{lvl}.{"downsample" if p.part == "encoder" else "upsample"}.conv',
        'mid_res': f'{p.part}.mid.block_{p.index + 1}', 'mid_attn': f'{p.part}.mid.attn_1',
    }[p.kind]


def _key_map(model: nn.Module, prefix_of, res_names: Mapping[str, str],
             attn_names: Mapping[str, str]) -> dict[str, str]:
    num_levels = len(model.encoder.levels)
    out: dict[str, str] = {}
    for ours, module, place in _places(model):
        theirs = prefix_of(place, num_levels)
        names = res_names if isinstance(module, ResBlock) else attn_names if isinstance(module, AttnBlock) else None
        for pname, _ in module.named_parameters():
            if names is None:
                out[f'{ours}.{pname}'] = f'{theirs}.{pname}'
            else:
                sub, leaf = pname.rsplit('.', 1)
                out[f'{ours}.{pname}'] = f'{theirs}.{names[sub]}.{leaf}'
    return out


def diffusers_key_map(model: nn.Module) -> dict[str, str]:
    """Every parameter of ``model``'s encoder and decoder -> its name in diffusers' ``AutoencoderKL`` (module doc)."""
    return _key_map(model, _diffusers_prefix, _RES_DIFFUSERS, _ATTN_DIFFUSERS)


def ldm_key_map(model: nn.Module) -> dict[str, str]:
    """Every parameter of ``model``'s encoder and decoder -> its name in the original LDM / VA-VAE state dict."""
    return _key_map(model, _ldm_prefix, _RES_LDM, _ATTN_LDM)


def _export(model: nn.Module, names: Mapping[str, str], linear_attn: bool) -> dict[str, Tensor]:
    own = model.state_dict()
    out = {}
    for ours, theirs in names.items():
        t = own[ours].detach()
        if linear_attn and t.dim() == 4 and '.attentions.' in theirs and theirs.endswith('.weight'):
            t = t.reshape(t.shape[0], t.shape[1])  # 1x1 conv (C, C, 1, 1) -> Linear (C, C)
        out[theirs] = t.clone().contiguous()
    return out


def to_diffusers_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s encoder / decoder weights under diffusers' ``AutoencoderKL`` names and shapes (attention
    projections as ``Linear`` ``(C, C)``); the tensors are copies."""
    return _export(model, diffusers_key_map(model), linear_attn=True)


def to_ldm_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s encoder / decoder weights under the original LDM names (attention as 1x1 convs); copies."""
    return _export(model, ldm_key_map(model), linear_attn=False)


def _list(keys: list[str], n: int = 12) -> str:
    return ', '.join(keys[:n]) + (f' ... ({len(keys)} in all)' if len(keys) > n else '')


def _import(model: nn.Module, state: Mapping[str, Tensor], names: Mapping[str, str], source: str,
            ignored: Mapping[str, str] | None = None) -> dict[str, Tensor]:
    """Our state dict (encoder / decoder keys) from ``state`` under ``names``' values; shapes as ours."""
    own = model.state_dict()
    wanted = {theirs: ours for ours, theirs in names.items()}
    missing = sorted(theirs for theirs in wanted if theirs not in state)
    unexpected = sorted(k for k in state if k not in wanted)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing: {_list(missing)}')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected: {_list(unexpected)}')
        raise StateDictKeyError(f'{source} does not fit the architecture ({"; ".join(parts)}); check the '
                                'architecture options (ch_mult / block_out_channels, num_res_blocks / '
                                'layers_per_block, attention levels, quant convs)')
    out = {}
    bad = []
    for theirs, ours in wanted.items():
        t = state[theirs]
        shape = own[ours].shape
        if t.shape != shape:
            attn = theirs.endswith('.weight') and ('.attentions.' in theirs or '.attn' in theirs)
            if attn and t.shape[:2] == shape[:2] and all(n == 1 for n in (*t.shape[2:], *shape[2:])):
                t = t.reshape(shape)  # Linear (C, C) / Conv1d (C, C, 1) / 1x1 conv (C, C, 1, 1): the same matrix
            else:
                bad.append(f'{theirs} {tuple(t.shape)} (model {tuple(shape)})')
                continue
        out[ours] = t
    if bad:
        raise StateDictKeyError(f'{source}: {len(bad)} tensors have another shape than the architecture: '
                                f'{_list(bad, 6)}')
    return out


def from_diffusers_state_dict(model: nn.Module, state: Mapping[str, Tensor],
                              source: str = 'the diffusers state dict') -> dict[str, Tensor]:
    """Our encoder / decoder state dict from a diffusers ``AutoencoderKL`` one (current or deprecated attention
    names, Linear- or conv-shaped); every key must be used and every weight present (:class:`StateDictKeyError`)."""
    renamed = {}
    for k, v in state.items():
        parts = k.split('.')
        if 'attentions' in parts and len(parts) >= 2 and parts[-2] in _DEPRECATED_DIFFUSERS_ATTN:
            k = '.'.join(parts[:-2] + [_DEPRECATED_DIFFUSERS_ATTN[parts[-2]], parts[-1]])
        renamed[k] = v
    return _import(model, renamed, diffusers_key_map(model), source)


def from_ldm_state_dict(model: nn.Module, state: Mapping[str, Tensor],
                        source: str = 'the LDM state dict') -> tuple[dict[str, Tensor], dict[str, int]]:
    """``(our encoder / decoder state dict, dropped)`` from an original LDM / VA-VAE state dict.

    ``state`` is the flat state dict (a checkpoint's ``state_dict`` already taken out). A whole Stable Diffusion
    checkpoint keeps its VAE under ``first_stage_model.``: then only those keys are read and the rest is dropped.
    Training-only keys (:data:`LDM_TRAINING_PREFIXES`: the loss with its discriminator and LPIPS, VA-VAE's foundation
    model and VF projection) are dropped. ``dropped`` counts the dropped keys per top-level prefix. Any other key
    that is no weight of the architecture, or a weight that is absent, is a :class:`StateDictKeyError` listing them.
    """
    dropped: dict[str, int] = {}
    prefix = next((p for p in _LDM_VAE_PREFIXES if any(k.startswith(p) for k in state)), '')
    kept = {}
    for k, v in state.items():
        if prefix and not k.startswith(prefix):
            dropped[k.split('.', 1)[0] + '.'] = dropped.get(k.split('.', 1)[0] + '.', 0) + 1
            continue
        k = k[len(prefix):]
        hit = next((p for p in LDM_TRAINING_PREFIXES if k.startswith(p)), None)
        if hit is not None:
            dropped[prefix + hit] = dropped.get(prefix + hit, 0) + 1
            continue
        kept[k] = v
    return _import(model, kept, ldm_key_map(model), source), dropped
