"""The official-checkpoint converter (``models/official_keys.py``, ``models/official_checkpoint.py``) pinned as values:
whole config dicts, the whole written config text, every refusal's whole message, the converted state dict and the
written checkpoint's ``meta``.

The official-format state dicts are built from our own tiny models with the three key renames written out here
(independently of the library's map), the column-first ``pos_embed`` and the RoPE tables; a released B/1 layout is
built on the ``meta`` device (shapes only, no memory). With ``LIGHTNINGDIT_OFFICIAL_REPO`` (a checkout of
hustvl/LightningDiT) the last test checks that these synthetic layouts have the official model's own keys and shapes.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp

import pytest
import torch

from projects.lightningdit.lightningdit.models import column_first_sincos_table
from projects.lightningdit.lightningdit.models.official_checkpoint import (_config_text, convert_official_checkpoint,
                                                                           official_model_config)
from projects.lightningdit.lightningdit.models.official_keys import (OfficialCheckpointError,
                                                                     convert_official_state_dict,
                                                                     official_backbone_config, official_tables,
                                                                     official_to_ours, select_weights)
from transvae.engine.checkpoint_io import UntrustedCheckpointError, trusted_checkpoints
from transvae.registry import MODELS
from transvae.utils.output_paths import OutputPathError

OFFICIAL_REPO = os.environ.get('LIGHTNINGDIT_OFFICIAL_REPO')
APE = {'type': 'ColumnFirstSinCosAPE'}
QK_ATTN = {'type': 'MultiHeadSelfAttention', 'qk_norm_cfg': {'type': 'RMSNorm', 'eps': 1e-6}, 'qkv_bias': True}
#: a custom size: depth 3, width 24, 3 heads (head_dim 8), patch 2, 3 latent channels, 5 classes
CUSTOM = dict(type='LightningDiT', arch=None, depth=3, embed_dims=24, num_heads=3, patch_size=2, in_channels=3,
              num_classes=5, ape_cfg=APE)
#: its backbone config as the converter writes it (grid 3: latent 6)
CUSTOM_BACKBONE = {'type': 'LightningDiT', 'arch': None, 'depth': 3, 'embed_dims': 24, 'num_heads': 3,
                   'patch_size': 2, 'in_channels': 3, 'num_classes': 5, 'class_dropout_prob': 0.1, 'ape_cfg': APE}
#: the paper's protocol (no training config in the checkpoint)
PAPER_SAMPLER = {'type': 'EulerODESampler', 'num_grid_points': 250, 'shift': 0.3}
PAPER_GUIDANCE = {'type': 'ClassifierFreeGuidance', 'scale': 1.0, 'interval_start': 0.11, 'guided_channels': 3}
PAPER_NOTE = ("the checkpoint has no training config: the paper's protocol (250 grid points = 249 Euler steps, time "
              'shift 0.3, no CFG)')


def to_official(key: str) -> str:
    """Our key -> the official one (written out here, not the library's map)."""
    if key.startswith('y_embedder.table.'):
        return 'y_embedder.embedding_table.' + key[len('y_embedder.table.'):]
    if key.startswith('final_layer.norm.'):
        return 'final_layer.norm_final.' + key[len('final_layer.norm.'):]
    parts = key.split('.', 3)
    if parts[0] == 'blocks' and parts[2] == 'ffn':
        return f'blocks.{parts[1]}.mlp.{parts[3]}'
    return key


def build(seed: int = 0, **kw) -> torch.nn.Module:
    """Our backbone (``CUSTOM`` updated with ``kw``) with every weight perturbed."""
    torch.manual_seed(seed)
    model = MODELS.build(dict(CUSTOM, **kw))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def official_sd(model: torch.nn.Module, grid: int = 3) -> dict[str, torch.Tensor]:
    """``model``'s weights in the official layout, with its fixed tables for a ``grid`` x ``grid`` latent."""
    sd = {to_official(k): v.clone() for k, v in model.state_dict().items()}
    sd['pos_embed'] = column_first_sincos_table(model.embed_dims, (grid, grid)).float().unsqueeze(0)
    if type(model.rope).__name__ == 'RoPE2D':  # rope_cfg=None gives NoPE
        ang = model.rope.get_angles((grid, grid)).repeat_interleave(2, dim=-1)
        sd['feat_rope.freqs_cos'], sd['feat_rope.freqs_sin'] = ang.cos(), ang.sin()
    return sd


def b1_layout() -> dict[str, torch.Tensor]:
    """A released LightningDiT-B/1 (f16d32 latents 16 x 16, 1000 classes) state dict on the meta device."""
    with torch.device('meta'):
        model = MODELS.build(dict(type='LightningDiT', arch='B/1', in_channels=32, num_classes=1000, ape_cfg=APE))
    sd = {to_official(k): v for k, v in model.state_dict().items()}
    sd['pos_embed'] = torch.empty(1, 256, 768, device='meta')
    sd['feat_rope.freqs_cos'] = sd['feat_rope.freqs_sin'] = torch.empty(256, 64, device='meta')
    return sd


# ---------------------------------------------------------------------------------------------------------- keys
def test_key_renames():
    assert {k: official_to_ours(k) for k in (
        'y_embedder.embedding_table.weight', 'blocks.0.mlp.w12.weight', 'blocks.11.mlp.w3.bias',
        'final_layer.norm_final.weight', 'final_layer.linear.weight', 'blocks.2.attn.qkv.weight',
        'blocks.0.norm1.weight', 'x_embedder.proj.weight', 'pos_embed', 'extra.y_embedder.embedding_table.weight',
        'blocks.x.mlp.w12.weight', 'blocks.1.attn.mlp.weight')} == {
        'y_embedder.embedding_table.weight': 'y_embedder.table.weight',
        'blocks.0.mlp.w12.weight': 'blocks.0.ffn.w12.weight',
        'blocks.11.mlp.w3.bias': 'blocks.11.ffn.w3.bias',
        'final_layer.norm_final.weight': 'final_layer.norm.weight',
        'final_layer.linear.weight': 'final_layer.linear.weight',
        'blocks.2.attn.qkv.weight': 'blocks.2.attn.qkv.weight',
        'blocks.0.norm1.weight': 'blocks.0.norm1.weight',
        'x_embedder.proj.weight': 'x_embedder.proj.weight',
        'pos_embed': 'pos_embed',
        'extra.y_embedder.embedding_table.weight': 'extra.y_embedder.embedding_table.weight',  # only at the start
        'blocks.x.mlp.w12.weight': 'blocks.x.mlp.w12.weight',  # a block index is a number
        'blocks.1.attn.mlp.weight': 'blocks.1.attn.mlp.weight'}  # only the block's own mlp
    model = build()
    assert {official_to_ours(to_official(k)) for k in model.state_dict()} == set(model.state_dict())


# ------------------------------------------------------------------------------------------------ select_weights
def test_select_weights_values():
    a, b = {'w': torch.zeros(1)}, {'w': torch.ones(1)}
    sd, which = select_weights({'model': b, 'ema': a, 'opt': {}, 'config': {'x': 1}})
    assert (which, list(sd), sd['w'].item()) == ('ema', ['w'], 0.0)  # EMA first, whatever the file's order
    assert sd is not a  # a copy: the caller may pop from it
    sd, which = select_weights({'model': b, 'ema': a}, 'model')
    assert (which, sd['w'].item()) == ('model', 1.0)
    sd, which = select_weights({'ema': None, 'model': b})  # an entry that is not a dict is not a set of weights
    assert (which, sd['w'].item()) == ('model', 1.0)
    sd, which = select_weights(b)
    assert (which, sd) == ('state dict', b) and sd is not b
    # DDP's 'module.' and torch.compile's '_orig_mod.' are stripped, in that order, only where every key has them
    t = torch.zeros(1)
    assert select_weights({'ema': {'module.a': t, 'module.b.c': t}})[0].keys() == {'a', 'b.c'}
    assert select_weights({'_orig_mod.a': t, '_orig_mod.b': t})[0].keys() == {'a', 'b'}
    assert select_weights({'module._orig_mod.a': t, 'module._orig_mod.b': t})[0].keys() == {'a', 'b'}
    assert select_weights({'module.a': t, 'b': t})[0].keys() == {'module.a', 'b'}
    assert select_weights({'ema': {}})[0] == {}


def test_select_weights_refusals():
    t = torch.zeros(1)
    with pytest.raises(ValueError) as e:
        select_weights({'w': t}, 'EMA')
    assert str(e.value) == "weights must be one of ('ema', 'model') or None, got 'EMA'"
    with pytest.raises(OfficialCheckpointError) as e:
        select_weights({'model': {'w': t}}, 'ema', name='run/last.pt')
    assert str(e.value) == "run/last.pt has no 'ema' weights (it holds ['model']); choose --model"
    with pytest.raises(OfficialCheckpointError) as e:
        select_weights({'ema': {'w': t}}, 'model')
    assert str(e.value) == "checkpoint has no 'model' weights (it holds ['ema']); choose --ema"
    with pytest.raises(OfficialCheckpointError) as e:
        select_weights({'w': t}, 'model')
    assert str(e.value) == ("checkpoint is a bare state dict without 'ema' / 'model' entries: it holds one set of "
                            'weights, so --model does not apply')
    with pytest.raises(OfficialCheckpointError) as e:
        select_weights({f'k{i}': i for i in (9, 3, 1, 0, 7, 5, 2, 8, 4, 6)} | {10: 'x'}, name='f.pt')
    assert str(e.value) == ("f.pt is not an official LightningDiT checkpoint: no 'ema' / 'model' entry and no "
                            "tensors (top-level keys: ['10', 'k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6'])")


# -------------------------------------------------------------------------------------- official_backbone_config
def test_backbone_config_released_b1_layout():
    """The released B/1 layout (meta tensors): by official name, by our name; the model config and its text."""
    sd = b1_layout()
    want = {'latent_size': 16, 'backbone': {'type': 'LightningDiT', 'arch': 'B/1', 'in_channels': 32,
                                            'num_classes': 1000, 'class_dropout_prob': 0.1, 'ape_cfg': APE}}
    assert official_backbone_config(sd, 'LightningDiT-B/1') == want
    assert official_backbone_config(sd, 'B/1') == want
    model, notes = official_model_config(want, None)
    assert model == {'type': 'LatentFlowModel', 'latent_size': 16, 'backbone': want['backbone'],
                     'sampler': PAPER_SAMPLER, 'guidance': PAPER_GUIDANCE}
    assert model['backbone'] is not want['backbone'] and notes == [PAPER_NOTE]
    assert _config_text(model, None, '/ckpt/b1.pt', 'ema', None) == """\
# LatentFlowModel of the official LightningDiT checkpoint /ckpt/b1.pt (ema weights), written by
# projects/lightningdit/tools/convert_official_checkpoint.py.
# The model only: copy `model` into a leaf config (with `_delete_=True` over a Fig. 6 config), or
# convert again with --base-config FIG6_CONFIG for a config that tools/test.py runs directly.
custom_imports = dict(imports=['projects.lightningdit.lightningdit'], allow_failed_imports=False)
model = {'type': 'LatentFlowModel',
 'latent_size': 16,
 'backbone': {'type': 'LightningDiT',
              'arch': 'B/1',
              'in_channels': 32,
              'num_classes': 1000,
              'class_dropout_prob': 0.1,
              'ape_cfg': {'type': 'ColumnFirstSinCosAPE'}},
 'sampler': {'type': 'EulerODESampler', 'num_grid_points': 250, 'shift': 0.3},
 'guidance': {'type': 'ClassifierFreeGuidance',
              'scale': 1.0,
              'interval_start': 0.11,
              'guided_channels': 3}}
"""
    # with the reference's training config (its sample and data sections) and a base config
    cfg = {'data': {'latent_norm': True, 'latent_multiplier': 1.0},
           'sample': {'num_sampling_steps': 250, 'timestep_shift': 0.0625, 'cfg_scale': 6.7}}
    model, notes = official_model_config(want, cfg)
    assert notes == []
    assert _config_text(model, cfg, '/ckpt/b1.pt', 'model', 'configs/base.py') == f"""\
# LatentFlowModel of the official LightningDiT checkpoint /ckpt/b1.pt (model weights), written by
# projects/lightningdit/tools/convert_official_checkpoint.py.
# Everything but the model (data, evaluation, runtime) comes from the base config: evaluate with
# tools/test.py THIS_CONFIG CONVERTED.pth
_base_ = [{osp.abspath('configs/base.py')!r}]
model = {{'_delete_': True,
 'type': 'LatentFlowModel',
 'latent_size': 16,
 'backbone': {{'type': 'LightningDiT',
              'arch': 'B/1',
              'in_channels': 32,
              'num_classes': 1000,
              'class_dropout_prob': 0.1,
              'ape_cfg': {{'type': 'ColumnFirstSinCosAPE'}}}},
 'sampler': {{'type': 'EulerODESampler', 'num_grid_points': 250, 'shift': 0.0625}},
 'guidance': {{'type': 'ClassifierFreeGuidance',
              'scale': 6.7,
              'interval_start': 0.0,
              'guided_channels': 3}}}}
# the reference normalised its latents with latent_norm=True and latent_multiplier=1.0
train_dataloader = dict(dataset=dict(latent_multiplier=1.0))
test_evaluator = dict(latent_multiplier=1.0)
"""
    # the sampler line is 81 characters: one line at pprint width 100 (not at its default 80)
    assert "\n 'sampler': {'type': 'EulerODESampler', 'num_grid_points': 250, 'shift': 0.0625},\n" in \
        _config_text(model, {}, 'x.pt', 'ema', None)


def test_backbone_config_custom_size_and_options():
    model = build()
    sd = official_sd(model)
    assert official_backbone_config(sd, None, num_heads=3) == {'latent_size': 6, 'backbone': CUSTOM_BACKBONE}
    # the label table without a null row: as many rows as classes, no label dropout
    assert official_backbone_config(sd, None, 6, num_heads=3) == {
        'latent_size': 6, 'backbone': dict(CUSTOM_BACKBONE, num_classes=6, class_dropout_prob=0.0)}
    # every option that shows in the weights, at once: patch 1, 5 channels, 4 x 4 grid, no RoPE, QK-norm,
    # wo_shift, learn_sigma
    opts = dict(patch_size=1, in_channels=5, rope_cfg=None, attn_cfg=QK_ATTN, wo_shift=True, learn_sigma=True)
    sd = official_sd(build(**opts), grid=4)
    assert 'feat_rope.freqs_cos' not in sd and 'blocks.0.attn.q_norm.weight' in sd
    assert official_backbone_config(sd, None, num_heads=3) == {'latent_size': 4, 'backbone': dict(
        CUSTOM_BACKBONE, patch_size=1, in_channels=5, rope_cfg=None, attn_cfg=QK_ATTN, wo_shift=True,
        learn_sigma=True)}
    # each option alone
    for kw, extra in ((dict(wo_shift=True), dict(wo_shift=True)), (dict(learn_sigma=True), dict(learn_sigma=True)),
                      (dict(attn_cfg=QK_ATTN), dict(attn_cfg=QK_ATTN)), (dict(rope_cfg=None), dict(rope_cfg=None))):
        assert official_backbone_config(official_sd(build(**kw)), None, num_heads=3) == {
            'latent_size': 6, 'backbone': dict(CUSTOM_BACKBONE, **extra)}, kw
    # the converted model builds and has the same keys and shapes
    for kw in (dict(), opts):
        sd = official_sd(build(**kw), grid=4)
        ours = MODELS.build(official_backbone_config(sd, None, num_heads=3)['backbone'])
        assert {official_to_ours(k): tuple(v.shape) for k, v in sd.items() if k[:3] not in ('pos', 'fea')} == {
            k: tuple(v.shape) for k, v in ours.state_dict().items()}


def _without(sd: dict, *keys: str) -> dict:
    return {k: v for k, v in sd.items() if k not in keys}


def _refusal(fn, *args, **kwargs) -> str:
    with pytest.raises(OfficialCheckpointError) as e:
        fn(*args, **kwargs)
    return str(e.value)


def test_backbone_config_refusals():
    sd = official_sd(build())
    for key in ('x_embedder.proj.weight', 'pos_embed', 'y_embedder.embedding_table.weight',
                'final_layer.linear.weight', 'blocks.0.adaLN_modulation.1.weight'):
        assert _refusal(official_backbone_config, _without(sd, key), None, name='a.pt', num_heads=3) == (
            f"a.pt: missing '{key}', which every official LightningDiT has (is this a LightningDiT checkpoint?)")
    assert _refusal(official_backbone_config, _without(sd, 'x_embedder.proj.weight'), None, num_heads=3) == (
        "checkpoint: missing 'x_embedder.proj.weight', which every official LightningDiT has (is this a "
        'LightningDiT checkpoint?)')
    flat = dict(sd, **{'x_embedder.proj.weight': torch.zeros(24, 12)})
    assert _refusal(official_backbone_config, flat, None, name='a.pt', num_heads=3) == (
        'a.pt: x_embedder.proj.weight has shape (24, 12), expected the 4-D weight of a patch convolution')
    for heads in (None, 0, 5):
        assert _refusal(official_backbone_config, sd, None, name='a.pt', num_heads=heads) == (
            f'a.pt: a custom size (no arch) needs num_heads dividing the width 24, got {heads!r}')
    assert _refusal(official_backbone_config, sd, 'LightningDiT-B/3', name='a.pt') == (
        "unknown arch 'LightningDiT-B/3': choose one of ['B/1', 'B/2', 'L/2', 'XL/1', 'XL/2', 'micro'] (or the "
        "official names ['LightningDiT-B/1', 'LightningDiT-B/2', 'LightningDiT-L/2', 'LightningDiT-XL/1', "
        "'LightningDiT-XL/2']), or give the head count of a custom size (--num-heads)")
    assert _refusal(official_backbone_config, sd, 'LightningDiT-XL/2', name='a.pt') == (
        "a.pt holds a DiT of depth 3, width 24, patch 2; arch 'XL/2' is depth 28, width 1152, patch 2: name the "
        'arch it was trained with (its config: model.model_type)')
    b1 = b1_layout()
    assert _refusal(official_backbone_config, b1, 'B/2') == (
        "checkpoint holds a DiT of depth 12, width 768, patch 1; arch 'B/2' is depth 12, width 768, patch 2: name "
        'the arch it was trained with (its config: model.model_type)')
    # a non-square patch kernel of the right width and height
    rect = dict(sd, **{'x_embedder.proj.weight': torch.zeros(24, 3, 2, 1)})
    assert _refusal(official_backbone_config, rect, None, name='a.pt', num_heads=3) == (
        "a.pt holds a DiT of depth 3, width 24, patch 2; arch None is depth 3, width 24, patch 2: name the arch it "
        'was trained with (its config: model.model_type)')
    # the reference's options this model does not have
    gelu = _without(sd, *[k for k in sd if k.startswith('blocks.') and '.mlp.' in k])
    gelu['blocks.0.mlp.fc1.weight'] = torch.zeros(96, 24)
    assert _refusal(official_backbone_config, gelu, None, name='a.pt', num_heads=3) == (
        'a.pt uses the GELU MLP (use_swiglu: false); only SwiGLU LightningDiTs convert (every released one)')
    layernorm = 'a.pt uses LayerNorm (use_rmsnorm: false); only RMSNorm LightningDiTs convert (every released one)'
    no_norms = _without(sd, *[k for k in sd if 'norm' in k])  # LayerNorm without affine weights: no norm entries
    assert _refusal(official_backbone_config, no_norms, None, name='a.pt', num_heads=3) == layernorm
    ln_qk = dict(sd, **{'blocks.0.attn.q_norm.weight': torch.ones(8), 'blocks.0.attn.q_norm.bias': torch.zeros(8)})
    assert _refusal(official_backbone_config, ln_qk, None, name='a.pt', num_heads=3) == layernorm
    # one norm entry missing is not LayerNorm: the config is written and the conversion lists the missing key
    for key in ('blocks.0.norm1.weight', 'final_layer.norm_final.weight'):
        assert official_backbone_config(_without(sd, key), None, num_heads=3) == {
            'latent_size': 6, 'backbone': CUSTOM_BACKBONE}
    assert _refusal(official_backbone_config, dict(sd, pos_embed=torch.zeros(1, 8, 24)), None, name='a.pt',
                    num_heads=3) == 'a.pt: pos_embed has 8 positions, not a square grid'
    assert _refusal(official_backbone_config, sd, None, 3, name='a.pt', num_heads=3) == (
        'a.pt: the label table has 6 rows, which fits neither 3 classes nor 3 + the null class')
    sd2 = dict(sd, **{'final_layer.linear.weight': torch.zeros(20, 24)})
    assert _refusal(official_backbone_config, sd2, None, name='a.pt', num_heads=3) == (
        'a.pt: final_layer.linear gives 20 outputs, expected 12 (p^2 C) or 24 (learn_sigma)')


# ----------------------------------------------------------------------------------- convert_official_state_dict
def test_convert_state_dict_values():
    model = build(attn_cfg=QK_ATTN, wo_shift=True)
    sd = official_sd(model)
    target = MODELS.build(official_backbone_config(sd, None, num_heads=3)['backbone'])
    out, diffs = convert_official_state_dict(sd, target)
    ours = model.state_dict()
    assert list(out) == [official_to_ours(k) for k in sd if k[:3] not in ('pos', 'fea')]
    assert out.keys() == ours.keys() and all(torch.equal(out[k], ours[k]) for k in ours)
    assert diffs == {'pos_embed': 0.0, 'feat_rope.freqs_cos': 0.0, 'feat_rope.freqs_sin': 0.0}
    # float64 weights are cast to the model's dtype; a (1, N, head_dim) RoPE buffer is read in the table's shape
    sd64 = {k: v.double() for k, v in sd.items()}
    sd64['feat_rope.freqs_sin'] = sd['feat_rope.freqs_sin'].unsqueeze(0)
    out64, diffs = convert_official_state_dict(sd64, target)
    assert {v.dtype for v in out64.values()} == {torch.float32}
    assert all(torch.equal(out64[k], ours[k]) for k in ours)
    assert diffs == {'pos_embed': 0.0, 'feat_rope.freqs_cos': 0.0, 'feat_rope.freqs_sin': 0.0}
    # a stored table off by exactly the tolerance (1e-4, at sin 0 = 0 in float64) is accepted, with that difference
    off = dict(sd64)
    off['pos_embed'] = sd['pos_embed'].double().clone()
    off['pos_embed'][0, 0, 0] = 1e-4
    assert off['pos_embed'][0, 0, 0] - sd['pos_embed'][0, 0, 0].double() == 1e-4
    assert convert_official_state_dict(off, target)[1]['pos_embed'] == 1e-4
    # without RoPE: no RoPE tables to check, and none expected
    plain = build(rope_cfg=None)
    sd = official_sd(plain)
    out, diffs = convert_official_state_dict(sd, MODELS.build(official_backbone_config(sd, None,
                                                                                         num_heads=3)['backbone']))
    assert diffs == {'pos_embed': 0.0} and out.keys() == plain.state_dict().keys()
    # an empty grid: empty tables agree
    empty = dict(official_sd(model), pos_embed=torch.zeros(1, 0, 24), **{
        'feat_rope.freqs_cos': torch.zeros(0, 8), 'feat_rope.freqs_sin': torch.zeros(0, 8)})
    assert convert_official_state_dict(empty, target)[1] == {'pos_embed': 0.0, 'feat_rope.freqs_cos': 0.0,
                                                              'feat_rope.freqs_sin': 0.0}


def test_official_tables_values():
    model = build()
    tables = official_tables(model, (2, 3))
    assert {k: tuple(v.shape) for k, v in tables.items()} == {
        'pos_embed': (1, 6, 24), 'feat_rope.freqs_cos': (6, 8), 'feat_rope.freqs_sin': (6, 8)}
    assert torch.equal(tables['pos_embed'][0], column_first_sincos_table(24, (2, 3)).float())
    ang = model.rope.get_angles((2, 3))  # (6, 4): one angle per rotated pair, each pair's two entries share it
    assert torch.equal(tables['feat_rope.freqs_cos'][:, 0::2], ang.cos())
    assert torch.equal(tables['feat_rope.freqs_cos'][:, 1::2], ang.cos())
    assert torch.equal(tables['feat_rope.freqs_sin'][:, 0::2], ang.sin())
    assert torch.equal(tables['feat_rope.freqs_sin'][:, 1::2], ang.sin())
    assert official_tables(build(rope_cfg=None), (2, 2)).keys() == {'pos_embed'}


def test_convert_state_dict_refusals():
    model = build()
    sd = official_sd(model)
    target = MODELS.build(dict(CUSTOM, class_dropout_prob=0.1))
    row_first = MODELS.build(dict(CUSTOM, ape_cfg=dict(type='SinCosAPE')))
    assert _refusal(convert_official_state_dict, sd, row_first) == (
        "the converted model must add the column-first sin-cos table (ape_cfg=dict(type='ColumnFirstSinCosAPE')), "
        'or every position is transposed')
    prefix = 'checkpoint does not fit the converted LightningDiT: '
    # one problem of each kind alone, then two of each at once
    assert _refusal(convert_official_state_dict, dict(sd, **{'blocks.0.attn.bogus': torch.zeros(1)}), target) == (
        prefix + '1 unknown key(s): blocks.0.attn.bogus')
    assert _refusal(convert_official_state_dict, _without(sd, 'blocks.2.norm2.weight'), target) == (
        prefix + '1 missing key(s) (our names): blocks.2.norm2.weight')
    assert _refusal(convert_official_state_dict, _without(sd, 'final_layer.norm_final.weight'), target) == (
        prefix + '1 missing key(s) (our names): final_layer.norm.weight')
    assert _refusal(convert_official_state_dict, _without(sd, 'feat_rope.freqs_sin'), target) == (
        prefix + '1 missing key(s) (our names): feat_rope.freqs_sin')
    assert _refusal(convert_official_state_dict, dict(sd, **{'blocks.1.mlp.w3.bias': torch.zeros(7)}), target) == (
        prefix + '1 shape mismatch(es): blocks.1.mlp.w3.bias (7,) -> blocks.1.ffn.w3.bias (24,)')
    bad = _without(sd, 'blocks.2.norm2.weight', 'y_embedder.embedding_table.weight', 'feat_rope.freqs_cos')
    bad.update({'blocks.0.attn.q_norm.weight': torch.ones(8), 'zz.extra': torch.ones(1),
                'blocks.1.mlp.w3.bias': torch.zeros(7), 'final_layer.linear.bias': torch.zeros(3)})
    assert _refusal(convert_official_state_dict, bad, target, name='b.pt') == (
        'b.pt does not fit the converted LightningDiT: 2 unknown key(s): blocks.0.attn.q_norm.weight, zz.extra; '
        '3 missing key(s) (our names): blocks.2.norm2.weight, y_embedder.table.weight, feat_rope.freqs_cos; '
        '2 shape mismatch(es): blocks.1.mlp.w3.bias (7,) -> blocks.1.ffn.w3.bias (24,); '
        'final_layer.linear.bias (3,) -> final_layer.linear.bias (12,)')
    # RoPE tables in a checkpoint whose model has none are unknown keys
    no_rope = MODELS.build(dict(CUSTOM, rope_cfg=None))
    assert _refusal(convert_official_state_dict, sd, no_rope) == (
        prefix + '2 unknown key(s): feat_rope.freqs_cos, feat_rope.freqs_sin')
    # the fixed tables: another shape, other values (the row-first table of the core SinCosAPE)
    assert _refusal(convert_official_state_dict, dict(sd, pos_embed=torch.zeros(1, 9, 16)), target, name='c.pt') == (
        'c.pt: pos_embed has shape (1, 9, 16), the converted model computes (1, 9, 24)')
    assert _refusal(convert_official_state_dict, dict(sd, **{'feat_rope.freqs_cos': torch.zeros(9, 4)}), target) == (
        'checkpoint: feat_rope.freqs_cos has shape (9, 4), the converted model computes (9, 8)')
    assert _refusal(convert_official_state_dict, _without(sd, 'pos_embed'), target) == (
        'checkpoint: feat_rope.freqs_cos has shape (9, 8), the converted model computes (0, 8)')
    core = MODELS.build(dict(type='SinCosAPE', embed_dims=24)).embed_tokens(torch.zeros(1, 9, 24), (3, 3))
    diff = float((core.double() - sd['pos_embed'].double()).abs().max())
    assert _refusal(convert_official_state_dict, dict(sd, pos_embed=core), target, name='c.pt') == (
        f'c.pt: the stored pos_embed differs from the fixed table the converted model computes by {diff:.3g} '
        "(> 0.0001): it is not the reference's sin-cos / RoPE table of this grid, so the outputs would differ")
    off = dict(sd, **{'feat_rope.freqs_sin': sd['feat_rope.freqs_sin'].double() + 1.5e-4})
    assert _refusal(convert_official_state_dict, off, target) == (
        'checkpoint: the stored feat_rope.freqs_sin differs from the fixed table the converted model computes by '
        "0.00015 (> 0.0001): it is not the reference's sin-cos / RoPE table of this grid, so the outputs would "
        'differ')


# ------------------------------------------------------------------------------------ official_model_config
def test_model_config_sampling_protocols():
    size = {'latent_size': 6, 'backbone': CUSTOM_BACKBONE}

    def cfg(sample):
        model, notes = official_model_config(size, {'sample': sample} if sample is not None else {})
        assert model['type'] == 'LatentFlowModel' and model['latent_size'] == 6
        assert model['backbone'] == CUSTOM_BACKBONE and model['backbone'] is not CUSTOM_BACKBONE
        return model['sampler'], model['guidance'], notes

    euler, cfg_off = 'EulerODESampler', 'ClassifierFreeGuidance'
    # a training config without a sample section: the reference's inference.py defaults
    assert cfg(None) == ({'type': euler, 'num_grid_points': 250, 'shift': 0.0},
                         {'type': cfg_off, 'scale': 1.0, 'interval_start': 0.0, 'guided_channels': 3}, [])
    assert cfg({}) == cfg(None)
    assert cfg({'sampling_method': 'Heun2', 'num_sampling_steps': 50, 'timestep_shift': 0.3, 'cfg_scale': 1.5,
                'cfg_interval_start': 0.125, 'mode': 'ode'}) == (
        {'type': 'HeunODESampler', 'num_grid_points': 50, 'shift': 0.3},
        {'type': cfg_off, 'scale': 1.5, 'interval_start': 0.125, 'guided_channels': 3}, [])
    # CFG only above 1 (a scale below 1 is no guidance)
    assert cfg({'cfg_scale': 0.5})[1]['scale'] == 1.0
    assert cfg({'cfg_scale': 1.0})[1]['scale'] == 1.0
    # what has no counterpart here is written as the closest and noted
    assert cfg({'sampling_method': 'dopri5', 'mode': 'SDE'}) == (
        {'type': euler, 'num_grid_points': 250, 'shift': 0.0},
        {'type': cfg_off, 'scale': 1.0, 'interval_start': 0.0, 'guided_channels': 3},
        ["its sampling_method 'dopri5' has no fixed-grid sampler here: Euler is written instead",
         "its sample.mode 'SDE' is not reproduced: the ODE sampler is written"])
    assert cfg({'sampling_method': None})[2] == [
        "its sampling_method 'none' has no fixed-grid sampler here: Euler is written instead"]
    # no training config at all: the paper's protocol
    model, notes = official_model_config(size, None)
    assert (model['sampler'], model['guidance'], notes) == (PAPER_SAMPLER, PAPER_GUIDANCE, [PAPER_NOTE])


# ---------------------------------------------------------------------------------- convert_official_checkpoint
def test_convert_checkpoint_custom_size_files(tmp_path):
    """A train.py checkpoint without config, custom size: the returned dict, the written config and checkpoint."""
    model = build(wo_shift=True, learn_sigma=True)
    sd = official_sd(model)
    src, out = str(tmp_path / 'official.pt'), str(tmp_path / 'ours.pth')
    live = {k: v if k[:3] in ('pos', 'fea') else v + 1 for k, v in sd.items()}  # the fixed tables are the same
    torch.save({'model': live, 'ema': sd, 'opt': {}}, src)
    info = convert_official_checkpoint(src, out, num_heads=3)
    backbone = dict(CUSTOM_BACKBONE, wo_shift=True, learn_sigma=True)
    flow = {'type': 'LatentFlowModel', 'latent_size': 6, 'backbone': backbone, 'sampler': PAPER_SAMPLER,
            'guidance': PAPER_GUIDANCE}
    params = sum(p.numel() for p in model.parameters())
    text = info.pop('config_text')
    assert info == {'weights': 'ema', 'model': flow, 'config_out': str(tmp_path / 'ours_config.py'), 'out': out,
                    'notes': [PAPER_NOTE], 'table_max_abs_diff': {'pos_embed': 0.0, 'feat_rope.freqs_cos': 0.0,
                                                                  'feat_rope.freqs_sin': 0.0},
                    'parameters': params}
    assert text == open(info['config_out']).read() == f"""\
# LatentFlowModel of the official LightningDiT checkpoint {src} (ema weights), written by
# projects/lightningdit/tools/convert_official_checkpoint.py.
# The model only: copy `model` into a leaf config (with `_delete_=True` over a Fig. 6 config), or
# convert again with --base-config FIG6_CONFIG for a config that tools/test.py runs directly.
custom_imports = dict(imports=['projects.lightningdit.lightningdit'], allow_failed_imports=False)
model = {{'type': 'LatentFlowModel',
 'latent_size': 6,
 'backbone': {{'type': 'LightningDiT',
              'arch': None,
              'depth': 3,
              'embed_dims': 24,
              'num_heads': 3,
              'patch_size': 2,
              'in_channels': 3,
              'num_classes': 5,
              'class_dropout_prob': 0.1,
              'ape_cfg': {{'type': 'ColumnFirstSinCosAPE'}},
              'wo_shift': True,
              'learn_sigma': True}},
 'sampler': {{'type': 'EulerODESampler', 'num_grid_points': 250, 'shift': 0.3}},
 'guidance': {{'type': 'ClassifierFreeGuidance',
              'scale': 1.0,
              'interval_start': 0.11,
              'guided_channels': 3}}}}
"""
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert ckpt['meta'] == {'converted_from': osp.abspath(src), 'weights': 'ema', 'model': json.dumps(flow),
                            'official_config': None, 'table_max_abs_diff': info['table_max_abs_diff']}
    ours = model.state_dict()
    assert ckpt['state_dict'].keys() == {f'backbone.{k}' for k in ours}
    assert all(torch.equal(ckpt['state_dict'][f'backbone.{k}'], v) for k, v in ours.items())
    # --model: the live weights, from a bare state dict with DDP's prefix: 'state dict'
    info = convert_official_checkpoint(src, str(tmp_path / 'live.pth'), weights='model', num_heads=3)
    live = torch.load(str(tmp_path / 'live.pth'), weights_only=True)
    assert info['weights'] == 'model' and json.loads(live['meta']['model']) == flow
    assert live['meta']['weights'] == 'model'
    assert all(torch.equal(live['state_dict'][f'backbone.{k}'], v + 1) for k, v in ours.items())
    assert open(str(tmp_path / 'live_config.py')).read().splitlines()[0] == (
        f'# LatentFlowModel of the official LightningDiT checkpoint {src} (model weights), written by')
    torch.save({f'module.{k}': v for k, v in sd.items()}, src)
    info = convert_official_checkpoint(src, str(tmp_path / 'bare.pth'), num_heads=3,
                                       config_out=str(tmp_path / 'bare_model.py'))
    assert (info['weights'], info['config_out']) == ('state dict', str(tmp_path / 'bare_model.py'))
    assert torch.load(str(tmp_path / 'bare.pth'), weights_only=True)['meta']['weights'] == 'state dict'
    assert info['config_text'].splitlines()[0] == (f'# LatentFlowModel of the official LightningDiT checkpoint {src} '
                                                   '(state dict weights), written by')


def test_convert_checkpoint_with_training_config(tmp_path):
    """A train.py checkpoint with the reference's config: arch, classes, sampling and latent scaling read from it."""
    model = build(arch='micro', depth=None, embed_dims=None, num_heads=None, patch_size=None, in_channels=4,
                  num_classes=4, class_dropout_prob=0.0)
    sd = official_sd(model, grid=2)
    official = {'model': {'model_type': 'micro'},
                'data': {'num_classes': 4, 'latent_multiplier': 0.5, 'latent_norm': False},
                'sample': {'sampling_method': 'euler', 'num_sampling_steps': 25, 'cfg_scale': 2.0}}
    src = str(tmp_path / 'official.pt')
    torch.save({'ema': sd, 'config': official}, src)
    info = convert_official_checkpoint(src, str(tmp_path / 'a.pth'))  # the arch: its config's model_type
    backbone = {'type': 'LightningDiT', 'arch': 'micro', 'in_channels': 4, 'num_classes': 4,
                'class_dropout_prob': 0.0, 'ape_cfg': APE}
    flow = {'type': 'LatentFlowModel', 'latent_size': 4, 'backbone': backbone,
            'sampler': {'type': 'EulerODESampler', 'num_grid_points': 25, 'shift': 0.0},
            'guidance': {'type': 'ClassifierFreeGuidance', 'scale': 2.0, 'interval_start': 0.0, 'guided_channels': 3}}
    assert (info['model'], info['notes'], info['weights']) == (flow, [], 'ema')
    assert info['config_text'].endswith(
        "              'guided_channels': 3}}\n"
        '# the reference normalised its latents with latent_norm=False and latent_multiplier=0.5\n'
        'train_dataloader = dict(dataset=dict(latent_multiplier=0.5))\n'
        'test_evaluator = dict(latent_multiplier=0.5)\n')
    meta = torch.load(str(tmp_path / 'a.pth'), weights_only=True)['meta']
    assert json.loads(meta['official_config']) == official and json.loads(meta['model']) == flow
    # (a custom size from here) a config without data / sample sections and without the model type: the classes
    # from the label table, the reference's inference defaults, its default latent multiplier
    sd = official_sd(build())
    torch.save({'ema': sd, 'config': {'other': 1}}, src)
    info = convert_official_checkpoint(src, str(tmp_path / 'c.pth'), num_heads=3)
    assert (info['model']['backbone'], info['model']['sampler'], info['notes']) == (
        CUSTOM_BACKBONE, {'type': 'EulerODESampler', 'num_grid_points': 250, 'shift': 0.0}, [])
    assert info['config_text'].endswith(
        '# the reference normalised its latents with latent_norm=False and latent_multiplier=0.18215\n'
        'train_dataloader = dict(dataset=dict(latent_multiplier=0.18215))\n'
        'test_evaluator = dict(latent_multiplier=0.18215)\n')
    # the classes given win over the label table; a config that is not a dict (a YAML path) is no config
    torch.save({'ema': sd, 'config': 'configs/lightningdit_b1.yaml'}, src)
    info = convert_official_checkpoint(src, str(tmp_path / 'd.pth'), num_heads=3, num_classes=6)
    assert info['model']['backbone'] == dict(CUSTOM_BACKBONE, num_classes=6, class_dropout_prob=0.0)
    assert info['notes'] == [PAPER_NOTE] and 'latent_multiplier' not in info['config_text']
    assert torch.load(str(tmp_path / 'd.pth'), weights_only=True)['meta']['official_config'] is None
    # a config entry that JSON cannot hold (a tensor) is kept in meta as its text
    torch.save({'ema': sd, 'config': {'data': {'latent_mean': torch.zeros(2)}}}, src)
    convert_official_checkpoint(src, str(tmp_path / 'f.pth'), num_heads=3)
    assert torch.load(str(tmp_path / 'f.pth'), weights_only=True)['meta']['official_config'] == (
        '{"data": {"latent_mean": "tensor([0., 0.])"}}')
    # --num-heads (a custom size) over a config that names the model type
    torch.save({'ema': sd, 'config': {'model': {'model_type': 'LightningDiT-B/1'}}}, src)
    assert convert_official_checkpoint(src, str(tmp_path / 'e.pth'), num_heads=3)['model']['backbone'] == \
        CUSTOM_BACKBONE


def test_convert_checkpoint_refusals(tmp_path):
    sd = official_sd(build())
    src = str(tmp_path / 'official.pt')

    def refused(**kw) -> str:
        msg = _refusal(convert_official_checkpoint, src, str(tmp_path / 'x.pth'), **kw)
        assert not (tmp_path / 'x.pth').exists() and not (tmp_path / 'x_config.py').exists()
        return msg

    b1 = ("{src} holds a DiT of depth 3, width 24, patch 2; arch 'B/1' is depth 12, width 768, patch 1: name the arch "
          'it was trained with (its config: model.model_type)').format(src=src)
    for arch, model_type in (('B/1', 'LightningDiT-B/1'), ('LightningDiT-B/1', 'B/1'),
                             ('LightningDiT-B/1', 'LightningDiT-B/1'), (None, 'LightningDiT-B/1')):
        torch.save({'ema': sd, 'config': {'model': {'model_type': model_type}}}, src)
        assert refused(arch=arch) == b1, (arch, model_type)
    torch.save({'ema': sd, 'config': {'model': {'model_type': 'LightningDiT-B/1'}}}, src)
    assert refused(arch='XL/1') == f'--arch XL/1 but {src} was trained as LightningDiT-B/1 (its config)'
    torch.save({'ema': sd}, src)
    assert refused() == (f'{src} carries no config naming its model: pass --arch (one of '
                         "['B/1', 'B/2', 'L/2', 'XL/1', 'XL/2'])")
    assert refused(weights='model', num_heads=3) == f"{src} has no 'model' weights (it holds ['ema']); choose --ema"
    bad = dict(sd, **{'zz.extra': torch.ones(1)})
    torch.save({'ema': bad}, src)
    assert refused(num_heads=3) == f'{src} does not fit the converted LightningDiT: 1 unknown key(s): zz.extra'
    torch.save({'ema': dict(sd, pos_embed=torch.zeros(1, 7, 24))}, src)
    assert refused(num_heads=3) == f'{src}: pos_embed has 7 positions, not a square grid'
    # read without unpickling: a pickled object (the DiT train.py's args) is refused
    torch.save({'ema': sd, 'args': argparse.Namespace(lr=1e-4)}, src)
    with pytest.raises(UntrustedCheckpointError):
        convert_official_checkpoint(src, str(tmp_path / 'x.pth'), num_heads=3)
    with trusted_checkpoints(), pytest.raises(UntrustedCheckpointError):  # not even where the caller trusts files
        convert_official_checkpoint(src, str(tmp_path / 'x.pth'), num_heads=3)
    assert not (tmp_path / 'x.pth').exists()
    # outputs that would overwrite an input
    torch.save({'ema': sd}, src)
    with pytest.raises(OutputPathError) as e:
        convert_official_checkpoint(src, src, num_heads=3)
    assert str(e.value) == (f'OUT {src} is the official checkpoint ({src}): writing it would destroy an input. '
                            'Give another path.')
    base = tmp_path / 'base.py'
    base.write_text('x = 1\n')
    with pytest.raises(OutputPathError) as e:
        convert_official_checkpoint(src, str(tmp_path / 'y.pth'), num_heads=3, config_out=str(base),
                                    base_config=str(base))
    assert str(e.value) == (f'--config-out {base} is the base config ({base}): writing it would destroy an input. '
                            'Give another path.')
    assert base.read_text() == 'x = 1\n' and not (tmp_path / 'y.pth').exists()


# ------------------------------------------------------------------------------------------ the official layout
def test_synthetic_layouts_are_the_official_models():
    """The layouts built above have exactly the keys and shapes of the official LightningDiT (its own class, imported
    from ``LIGHTNINGDIT_OFFICIAL_REPO``), for the released options and for QK-norm + wo_shift + learn_sigma, and the
    GELU / LayerNorm models carry the entries the refusals look for."""
    if not OFFICIAL_REPO:
        pytest.skip('LIGHTNINGDIT_OFFICIAL_REPO is not set: the official layout check needs a checkout of '
                    'https://github.com/hustvl/LightningDiT (set the variable to its folder)')
    from projects.lightningdit.lightningdit.official_reference import load_official
    off = load_official(OFFICIAL_REPO)
    base = dict(input_size=6, patch_size=2, in_channels=3, hidden_size=24, depth=3, num_heads=3, num_classes=5,
                use_swiglu=True, use_rope=True, use_rmsnorm=True)
    for official_kw, ours_kw in (({}, {}), (dict(use_qknorm=True, wo_shift=True, learn_sigma=True),
                                            dict(attn_cfg=QK_ATTN, wo_shift=True, learn_sigma=True))):
        theirs = off.lightningdit.LightningDiT(**dict(base, **official_kw)).state_dict()
        mine = official_sd(build(**ours_kw))
        assert {k: tuple(v.shape) for k, v in theirs.items()} == {k: tuple(v.shape) for k, v in mine.items()}
        assert torch.equal(theirs['pos_embed'], mine['pos_embed'])
    gelu = off.lightningdit.LightningDiT(**dict(base, use_swiglu=False)).state_dict()
    assert 'blocks.0.mlp.fc1.weight' in gelu
    layernorm = off.lightningdit.LightningDiT(**dict(base, use_rmsnorm=False)).state_dict()
    assert not {'blocks.0.norm1.weight', 'final_layer.norm_final.weight'} & set(layernorm)
    ln_qk = off.lightningdit.LightningDiT(**dict(base, use_rmsnorm=False, use_qknorm=True)).state_dict()
    assert 'blocks.0.attn.q_norm.bias' in ln_qk
    for model in (gelu, layernorm, ln_qk):
        with pytest.raises(OfficialCheckpointError):
            official_backbone_config(model, None, num_heads=3)
