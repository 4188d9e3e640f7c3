"""Official hustvl/LightningDiT checkpoints -> this project's :class:`LightningDiT`: key map, settings, conversion.

An official ``train.py`` checkpoint is ``{'model', 'ema', 'opt', 'config'}`` (``torch.save`` of plain dicts, so it
loads with ``weights_only=True``); a released one may be the bare state dict. Its weights map onto ours by three
renames (:data:`OFFICIAL_TO_OURS`); everything else has the same name and layout. Two entries are not weights:

* ``pos_embed`` ``(1, N, D)``: the frozen 2-D sin-cos table, **column half first** (ours: row first). A rename would
  silently transpose every position, so the converted model uses :class:`ColumnFirstSinCosAPE` and the stored table
  is checked against it (:data:`TABLE_TOLERANCE`: EMA updates of a frozen parameter leave float32 rounding noise);
* ``feat_rope.freqs_cos`` / ``freqs_sin`` ``(N, head_dim)``: the EVA-style 2-D RoPE of its grid, which is our
  ``RoPE2D`` (rows' pairs first, interleaved); checked the same way.

The architecture is read from the weights (width, depth, patch, latent channels and grid, classes, ``learn_sigma``,
``wo_shift``, QK-norm, RoPE) and the named ``arch`` (the head count is not in the weights). Options of the reference
that this model does not have (LayerNorm instead of RMSNorm, the GELU MLP instead of SwiGLU) are refused by name.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from transvae.utils.errors import UserInputError

from .column_first_ape import ColumnFirstSinCosAPE, column_first_sincos_table
from .lightningdit import ARCHS, LightningDiT

#: official key pattern -> our key (``re.sub`` replacement); any other key keeps its name
OFFICIAL_TO_OURS: tuple[tuple[str, str], ...] = (
    (r'^y_embedder\.embedding_table\.', 'y_embedder.table.'),
    (r'^blocks\.(\d+)\.mlp\.', r'blocks.\1.ffn.'),
    (r'^final_layer\.norm_final\.', 'final_layer.norm.'),
)
#: official entries that are fixed tables of the architecture, checked against ours instead of loaded
TABLE_KEYS = ('pos_embed', 'feat_rope.freqs_cos', 'feat_rope.freqs_sin')
#: largest accepted max |stored - computed| of a fixed table (float32 EMA rounding stays far below)
TABLE_TOLERANCE = 1e-4
#: the reference's model names (``model.model_type``) -> ours
OFFICIAL_ARCHS = {f'LightningDiT-{a}': a for a in ('B/1', 'B/2', 'L/2', 'XL/1', 'XL/2')}
#: which weights of an official checkpoint
WEIGHTS = ('ema', 'model')


class OfficialCheckpointError(UserInputError, ValueError):
    """An official LightningDiT checkpoint that cannot be converted (unknown / missing keys, other architecture)."""


def official_to_ours(key: str) -> str:
    """Our name of an official state-dict key (:data:`OFFICIAL_TO_OURS`)."""
    for pattern, repl in OFFICIAL_TO_OURS:
        key, n = re.subn(pattern, repl, key)
        if n:
            break
    return key


def select_weights(ckpt: Mapping[str, Any], weights: str | None = None, name: str = 'checkpoint') -> tuple[dict, str]:
    """The state dict to convert and which it is.

    Args:
        ckpt: the loaded file: an official training checkpoint (``'ema'`` / ``'model'`` entries) or a bare state dict.
        weights: ``'ema'`` / ``'model'``; ``None``: the EMA weights where the file has them (what the reference's
            ``inference.py`` loads), else its model weights, else the bare state dict.
        name: the file, for messages.

    Returns:
        ``(state dict with a leading 'module.' stripped, 'ema' | 'model' | 'state dict')``.
    """
    if weights is not None and weights not in WEIGHTS:
        raise ValueError(f'weights must be one of {WEIGHTS} or None, got {weights!r}')
    nested = [k for k in WEIGHTS if isinstance(ckpt.get(k), Mapping)]
    if nested:
        which = weights or nested[0]
        if which not in nested:
            raise OfficialCheckpointError(f"{name} has no {which!r} weights (it holds {nested}); choose "
                                          f"{' or '.join('--' + k for k in nested)}")
        sd = dict(ckpt[which])
    elif any(torch.is_tensor(v) for v in ckpt.values()):
        if weights is not None:
            raise OfficialCheckpointError(f"{name} is a bare state dict without 'ema' / 'model' entries: it holds one "
                                          f'set of weights, so --{weights} does not apply')
        which, sd = 'state dict', dict(ckpt)
    else:
        raise OfficialCheckpointError(f"{name} is not an official LightningDiT checkpoint: no 'ema' / 'model' entry "
                                      f'and no tensors (top-level keys: {sorted(map(str, ckpt))[:8]})')
    for prefix in ('module.', '_orig_mod.'):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd, which


def _shape(sd: Mapping[str, Tensor], key: str, name: str) -> tuple[int, ...]:
    if key not in sd:
        raise OfficialCheckpointError(f'{name}: missing {key!r}, which every official LightningDiT has (is this a '
                                      'LightningDiT checkpoint?)')
    return tuple(sd[key].shape)


def official_backbone_config(sd: Mapping[str, Tensor], arch: str | None, num_classes: int | None = None,
                             name: str = 'checkpoint', num_heads: int | None = None) -> dict:
    """Our ``LightningDiT`` config (with ``latent_size``) for the official weights ``sd``.

    Args:
        sd: the official state dict (:func:`select_weights`).
        arch: one of :data:`ARCHS` (``'XL/1'``) or an official name (``'LightningDiT-XL/1'``); ``None``: a custom
            size read from the weights, with ``num_heads``.
        num_classes: the number of real classes; ``None``: the label table's rows minus the null row.
        name: the file, for messages.
        num_heads: attention heads of a custom size (``arch=None``; the weights do not hold it).

    Returns:
        ``dict(latent_size=..., backbone=dict(type='LightningDiT', ...))``: ``ape_cfg`` is
        :class:`ColumnFirstSinCosAPE`; non-default options (``rope_cfg=None``, QK-norm, ``wo_shift``,
        ``learn_sigma``) appear only where the weights use them.
    """
    patch_shape = _shape(sd, 'x_embedder.proj.weight', name)
    if len(patch_shape) != 4:
        raise OfficialCheckpointError(f'{name}: x_embedder.proj.weight has shape {patch_shape}, expected the 4-D '
                                      'weight of a patch convolution')
    d, c, p, p2 = patch_shape
    found_depth = len({k.split('.')[1] for k in sd if k.startswith('blocks.')})
    if arch is None:
        if not num_heads or d % num_heads:
            raise OfficialCheckpointError(f'{name}: a custom size (no arch) needs num_heads dividing the width {d}, '
                                          f'got {num_heads!r}')
        depth, dims, patch = found_depth, d, p
        size = dict(arch=None, depth=depth, embed_dims=dims, num_heads=num_heads, patch_size=patch)
    else:
        arch = OFFICIAL_ARCHS.get(arch, arch)
        if arch not in ARCHS:
            raise OfficialCheckpointError(f'unknown arch {arch!r}: choose one of {sorted(ARCHS)} (or the official '
                                          f'names {sorted(OFFICIAL_ARCHS)}), or give the head count of a custom '
                                          'size (--num-heads)')
        depth, dims, _, patch = ARCHS[arch]
        size = dict(arch=arch)
    if (found_depth, d, p) != (depth, dims, patch) or p != p2:
        raise OfficialCheckpointError(f'{name} holds a DiT of depth {found_depth}, width {d}, patch {p}; arch {arch!r} '
                                      f'is depth {depth}, width {dims}, patch {patch}: name the arch it was trained '
                                      'with (its config: model.model_type)')
    if 'blocks.0.mlp.fc1.weight' in sd:
        raise OfficialCheckpointError(f'{name} uses the GELU MLP (use_swiglu: false); only SwiGLU LightningDiTs '
                                      'convert (every released one)')
    if ('blocks.0.norm1.weight' not in sd and 'final_layer.norm_final.weight' not in sd) or \
            'blocks.0.attn.q_norm.bias' in sd:
        raise OfficialCheckpointError(f'{name} uses LayerNorm (use_rmsnorm: false); only RMSNorm LightningDiTs '
                                      'convert (every released one)')
    n = _shape(sd, 'pos_embed', name)[1]
    grid = math.isqrt(n)
    if grid * grid != n:
        raise OfficialCheckpointError(f'{name}: pos_embed has {n} positions, not a square grid')
    rows = _shape(sd, 'y_embedder.embedding_table.weight', name)[0]
    if num_classes is None:
        num_classes = rows - 1
    if rows not in (num_classes, num_classes + 1):
        raise OfficialCheckpointError(f'{name}: the label table has {rows} rows, which fits neither {num_classes} '
                                      f'classes nor {num_classes} + the null class')
    out = _shape(sd, 'final_layer.linear.weight', name)[0]
    if out not in (p * p * c, 2 * p * p * c):
        raise OfficialCheckpointError(f'{name}: final_layer.linear gives {out} outputs, expected {p * p * c} '
                                      f'(p^2 C) or {2 * p * p * c} (learn_sigma)')
    ada = _shape(sd, 'blocks.0.adaLN_modulation.1.weight', name)[0]
    backbone: dict[str, Any] = dict(type='LightningDiT', **size, in_channels=c, num_classes=num_classes,
                                    class_dropout_prob=0.1 if rows == num_classes + 1 else 0.0,
                                    ape_cfg=dict(type='ColumnFirstSinCosAPE'))
    if 'feat_rope.freqs_cos' not in sd:
        backbone['rope_cfg'] = None
    if 'blocks.0.attn.q_norm.weight' in sd:
        backbone['attn_cfg'] = dict(type='MultiHeadSelfAttention', qk_norm_cfg=dict(type='RMSNorm', eps=1e-6),
                                    qkv_bias=True)
    if ada == 4 * d:
        backbone['wo_shift'] = True
    if out == 2 * p * p * c:
        backbone['learn_sigma'] = True
    return dict(latent_size=grid * p, backbone=backbone)


def _table_diff(name: str, stored: Tensor, computed: Tensor, src: str) -> float:
    if tuple(stored.shape) != tuple(computed.shape):
        raise OfficialCheckpointError(f'{src}: {name} has shape {tuple(stored.shape)}, the converted model computes '
                                      f'{tuple(computed.shape)}')
    diff = float((stored.double() - computed.double()).abs().max()) if stored.numel() else 0.0
    if not diff <= TABLE_TOLERANCE:
        raise OfficialCheckpointError(
            f'{src}: the stored {name} differs from the fixed table the converted model computes by {diff:.3g} '
            f'(> {TABLE_TOLERANCE}): it is not the reference\'s sin-cos / RoPE table of this grid, so the outputs '
            'would differ')
    return diff


def official_tables(model: LightningDiT, grid: tuple[int, int]) -> dict[str, Tensor]:
    """What the official ``pos_embed`` / ``feat_rope.freqs_cos`` / ``freqs_sin`` hold for ``model`` on ``grid``."""
    tables = {'pos_embed': column_first_sincos_table(model.embed_dims, grid).float().unsqueeze(0)}
    if hasattr(model.rope, 'get_angles'):  # RoPE2D
        ang = model.rope.get_angles(grid).repeat_interleave(2, dim=-1)  # (N, head_dim): each pair's angle twice
        tables.update({'feat_rope.freqs_cos': ang.cos(), 'feat_rope.freqs_sin': ang.sin()})
    return tables


def convert_official_state_dict(sd: Mapping[str, Tensor], model: LightningDiT,
                                name: str = 'checkpoint') -> tuple[dict[str, Tensor], dict[str, float]]:
    """Official weights -> ``model``'s state dict (the backbone's keys), every key and shape accounted for.

    Args:
        sd: the official state dict (:func:`select_weights`).
        model: our backbone built from :func:`official_backbone_config` (its ``ape`` the column-first table).
        name: the file, for messages.

    Returns:
        ``(state dict for model.load_state_dict(strict=True), {table key: max |stored - computed|})``.

    Raises:
        OfficialCheckpointError: listing every unknown official key, every missing one and every shape mismatch.
    """
    ours = model.state_dict()
    if not isinstance(model.ape, ColumnFirstSinCosAPE):
        raise OfficialCheckpointError('the converted model must add the column-first sin-cos table '
                                      "(ape_cfg=dict(type='ColumnFirstSinCosAPE')), or every position is transposed")
    g = math.isqrt(sd['pos_embed'].shape[1]) if 'pos_embed' in sd else 0
    tables = official_tables(model, (g, g))
    diffs = {key: _table_diff(key, sd[key].reshape(tables[key].shape) if sd[key].numel() == tables[key].numel()
                              else sd[key], tables[key], name) for key in tables if key in sd}
    out: dict[str, Tensor] = {}
    unknown, shapes = [k for k in TABLE_KEYS if k in sd and k not in tables], []
    for key, value in sd.items():
        if key in TABLE_KEYS:
            continue
        new = official_to_ours(key)
        if new not in ours:
            unknown.append(key)
        elif tuple(value.shape) != tuple(ours[new].shape):
            shapes.append(f'{key} {tuple(value.shape)} -> {new} {tuple(ours[new].shape)}')
        else:
            out[new] = value.detach().to(ours[new].dtype).clone()
    missing = sorted(set(ours) - set(out) - {official_to_ours(k) for k in sd})
    missing_tables = [k for k in tables if k not in sd]
    if unknown or missing or shapes or missing_tables:
        parts = []
        if unknown:
            parts.append(f'{len(unknown)} unknown key(s): {", ".join(sorted(unknown))}')
        if missing or missing_tables:
            parts.append(f'{len(missing) + len(missing_tables)} missing key(s) (our names): '
                         f'{", ".join(missing + missing_tables)}')
        if shapes:
            parts.append(f'{len(shapes)} shape mismatch(es): {"; ".join(shapes)}')
        raise OfficialCheckpointError(f'{name} does not fit the converted LightningDiT: ' + '; '.join(parts))
    return out, diffs


__all__ = ['OFFICIAL_ARCHS', 'OFFICIAL_TO_OURS', 'OfficialCheckpointError', 'TABLE_KEYS', 'TABLE_TOLERANCE',
           'convert_official_state_dict', 'official_backbone_config', 'official_tables', 'official_to_ours',
           'select_weights']
