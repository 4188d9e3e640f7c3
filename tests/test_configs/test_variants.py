"""Ablation variants as registered classes / config keys, and every experiment config (paper scale + CPU preset)."""
from __future__ import annotations

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from transvae.engine.config_surgery import apply_preset
from transvae.registry import MODELS
from transvae.utils.complexity import build_encoder_decoder, count_params

ROOT = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'experiments')
EXPERIMENTS = sorted(glob.glob(osp.join(ROOT, '*.py')) + glob.glob(osp.join(ROOT, 'scaling', '*.py')))

TINY = dict(widths=[16, 16, 32, 32, 64], depths=[1, 1, 1, 1, 1], latent_channels=4, head_dim=16)
FFNS = [dict(type='PointwiseFFN', ffn_ratio=4.0), dict(type='DWConvFFN', ffn_ratio=4.0),
        dict(type='FullConvFFN', ffn_ratio=1.0)]
QK_NORMS = [dict(type='RMSNorm'), dict(type='LN'), None]
DC = {'on': ('DCDownsample', 'DCUpsample', True), 'off': ('ConvPixelUnshuffleDown', 'InterpConvUp', False)}


pytestmark = pytest.mark.usefixtures('one_thread')


def hybrid(ffn_cfg: dict, qk_norm_cfg: dict | None, dc: str = 'on', block: str = 'TransVAEBlock'):
    down, up, shortcut = DC[dc]
    arch = dict(TINY, latent_shortcut=shortcut,
                block_cfg=dict(type=block, ffn_cfg=ffn_cfg,
                               attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=qk_norm_cfg)))
    return build_encoder_decoder(dict(arch=arch, encoder=dict(type='TransVAEEncoder', down_cfg=dict(type=down)),
                                      decoder=dict(type='TransVAEDecoder', up_cfg=dict(type=up))))


@pytest.mark.parametrize('ffn_cfg', FFNS, ids=lambda c: c['type'])
@pytest.mark.parametrize('qk_norm_cfg', QK_NORMS, ids=['rmsnorm', 'ln', 'none'])
@pytest.mark.parametrize('dc', ['on', 'off'])
def test_hybrid_variant_builds_and_runs(ffn_cfg, qk_norm_cfg, dc):
    enc, dec = hybrid(ffn_cfg, qk_norm_cfg, dc)
    blk = enc.stages[2].blocks[0]
    assert type(blk.ffn).__name__ == ffn_cfg['type']
    assert type(blk.attn.q_norm).__name__ == ('Identity' if qk_norm_cfg is None else
                                              {'RMSNorm': 'RMSNorm', 'LN': 'LayerNorm'}[qk_norm_cfg['type']])
    x = torch.randn(1, 3, 32, 48)
    moments = enc(x)
    assert moments.shape == (1, 8, 2, 3)
    y = dec(moments[:, :4])
    assert y.shape == x.shape
    y.mean().backward()


def test_dc_path_is_parameter_free():
    """The DC shortcuts add no parameters: DC on and off differ only in the forward."""
    on = hybrid(FFNS[2], QK_NORMS[0], 'on')
    off = hybrid(FFNS[2], QK_NORMS[0], 'off')
    assert [count_params(m) for m in on] == [count_params(m) for m in off]
    assert type(on[0].downs[0]).__name__ == 'DCDownsample' and on[0].latent_shortcut
    assert type(off[1].ups[0]).__name__ == 'InterpConvUp' and not off[1].latent_shortcut


def test_multi_stage_vit_block():
    """"ViT w RoPE w Multi-Stage": the hybrid layout with the plain ViT block (one key: block_cfg)."""
    enc, _ = hybrid(FFNS[0], None, 'off', block='ViTBlock')
    assert type(enc.stages[0]).__name__ == 'ConvStage' and type(enc.stages[2]).__name__ == 'TransformerStage'
    assert type(enc.stages[2].blocks[0]).__name__ == 'ViTBlock'


# ------------------------------------------------------------------------------------------------ experiment configs
def _load(path: str) -> Config:
    return Config.fromfile(path)


def _blk(cfg: Config) -> dict:
    return cfg.model.arch.block_cfg


EXPECT = {
    'pe_ape.py': lambda c: c.model.arch.pe_cfg.type == 'LearnableAPE',
    'pe_rope.py': lambda c: c.model.arch.pe_cfg.type == 'RoPE2D' and c.model.encoder.type == 'ViTEncoder',
    'pe_none.py': lambda c: c.model.arch.pe_cfg.type == 'NoPE',
    'transvae_rope.py': lambda c: c.model.encoder.type == 'TransVAEEncoder' and c.model.arch.pe_cfg.type == 'RoPE2D',
    'patch_embed_conv.py': lambda c: (c.model.encoder.patch_embed_cfg.type, c.model.decoder.head_cfg.type) == (
        'ConvPatchEmbed', 'PixelShuffleHead'),
    'patch_embed_seqconv_enc.py': lambda c: (c.model.encoder.patch_embed_cfg.type, c.model.decoder.head_cfg.type) == (
        'SeqConvPatchEmbed', 'PixelShuffleHead'),
    'patch_embed_seqconv_dec.py': lambda c: (c.model.encoder.patch_embed_cfg.type, c.model.decoder.head_cfg.type) == (
        'ConvPatchEmbed', 'SeqConvUpHead'),
    'patch_embed_seqconv_dual.py': lambda c: (c.model.encoder.patch_embed_cfg.type, c.model.decoder.head_cfg.type) == (
        'SeqConvPatchEmbed', 'SeqConvUpHead'),
    'stage_single.py': lambda c: c.model.encoder.type == 'ViTEncoder' and c.model.arch.pe_cfg.type == 'RoPE2D',
    'stage_multi.py': lambda c: c.model.encoder.type == 'TransVAEEncoder' and _blk(c).type == 'ViTBlock',
    'cnn_vae.py': lambda c: c.model.encoder.type == 'CNNEncoder' and not c.model.arch.attn_levels
    and not c.model.arch.mid_attn,
    'ffn_standard.py': lambda c: _blk(c).ffn_cfg.type == 'PointwiseFFN' and c.model.arch.num_cnn_stages == 2,
    'ffn_dwconv.py': lambda c: _blk(c).ffn_cfg.type == 'DWConvFFN' and c.model.arch.num_cnn_stages == 2,
    'ffn_fullconv.py': lambda c: _blk(c).ffn_cfg.type == 'FullConvFFN' and _blk(c).ffn_cfg.ffn_ratio == 1.0,
    'ffn_single_standard.py': lambda c: c.model.encoder.type == 'ViTEncoder' and _blk(c).ffn_cfg.type == 'PointwiseFFN',
    'ffn_single_dwconv.py': lambda c: c.model.encoder.type == 'ViTEncoder' and _blk(c).ffn_cfg.type == 'DWConvFFN',
    'ffn_single_fullconv.py': lambda c: c.model.encoder.type == 'ViTEncoder' and _blk(c).ffn_cfg.type == 'FullConvFFN',
    'minor_baseline.py': lambda c: _blk(c).attn_cfg.qk_norm_cfg is None and c.model.encoder.down_cfg.type ==
    'ConvPixelUnshuffleDown' and not c.model.arch.latent_shortcut,
    'minor_dc.py': lambda c: _blk(c).attn_cfg.qk_norm_cfg is None and c.model.encoder.down_cfg.type == 'DCDownsample'
    and c.model.decoder.up_cfg.type == 'DCUpsample' and c.model.arch.latent_shortcut,
    'minor_rmsnorm.py': lambda c: _blk(c).attn_cfg.qk_norm_cfg.type == 'RMSNorm' and c.model.encoder.down_cfg.type ==
    'ConvPixelUnshuffleDown',
    'minor_both.py': lambda c: _blk(c).attn_cfg.qk_norm_cfg.type == 'RMSNorm' and c.model.encoder.down_cfg.type ==
    'DCDownsample' and c.model.arch.latent_shortcut,
}


def test_every_listed_experiment_exists():
    names = {osp.basename(p) for p in EXPERIMENTS if osp.dirname(p) == osp.normpath(ROOT) or 'scaling' not in p}
    assert set(EXPECT) <= names
    scaling = {osp.basename(p) for p in EXPERIMENTS if 'scaling' in p}
    assert scaling == {f'{f}_{s}.py' for f in ('cnn', 'vit', 'swin', 'transvae')
                       for s in ('tiny', 'base', 'large', 'huge', 'giant')}


@pytest.mark.parametrize('path', EXPERIMENTS, ids=lambda p: osp.relpath(p, ROOT))
def test_experiment_config(path):
    """Paper scale: the header names the change, 8xb32, the schedule; CPU preset: the model builds and runs."""
    with open(path) as f:
        first = f.readline()
    assert first.startswith('# ') and len(first) > 20
    cfg = _load(path)
    name = osp.basename(path)
    assert cfg.train_dataloader.batch_size == 32 and cfg.default_scope == 'transvae'
    assert cfg.model.kl_loss.loss_weight == 1e-8
    if 'scaling' in path:
        assert cfg.train_cfg.max_iters == 3 * 5005 and cfg.param_scheduler[0].end == 10000
        assert cfg.model.type == 'VAEGAN' and cfg.model.gan_loss.disc_weight == 0.05
        assert cfg.model.vf_loss.loss_weight == 0.1 and cfg.model.vf_loss.foundation_cfg.type == 'DINOv2'
    elif name.startswith('minor_'):
        assert cfg.train_cfg.max_iters == 10 * 5005  # Fig. 4(c) runs 10 epochs
    else:
        assert cfg.train_cfg.max_iters == 5 * 5005
    if name in EXPECT:
        assert EXPECT[name](cfg), name
    apply_preset(cfg, 'cpu')
    assert cfg.train_dataloader.batch_size < 32 and cfg.train_cfg.max_iters < 1000
    if cfg.model.type == 'VAEGAN':  # an OptimWrapperDict: only generator / discriminator entries
        assert {'constructor', 'generator', 'discriminator'} <= set(cfg.optim_wrapper) <= {'constructor', 'generator', 'discriminator', 'optimizer'}
        assert cfg.model.vf_loss.foundation_cfg.type == 'VGG16Proxy'
    torch.manual_seed(0)
    enc, dec = build_encoder_decoder(cfg)
    assert count_params(enc) + count_params(dec) < 5e6, 'the CPU preset must give micro widths'
    with torch.no_grad():
        moments = enc(torch.randn(1, 3, 32, 32))
        assert moments.shape[-2:] == (2, 2)
        assert dec(moments[:, :moments.shape[1] // 2]).shape == (1, 3, 32, 32)


SEQCONV_HEADS = [osp.join(ROOT, n) for n in ('patch_embed_seqconv_dec.py', 'patch_embed_seqconv_dual.py',
                                             'stage_single.py', 'ffn_single_standard.py', 'ffn_single_dwconv.py',
                                             'ffn_single_fullconv.py')]


@pytest.mark.parametrize('preset', [None, 'cpu'])
@pytest.mark.parametrize('path', SEQCONV_HEADS, ids=osp.basename)
def test_seqconv_head_is_never_instance_norm(path, preset):
    """Every GroupNorm in a shipped SeqConvUpHead holds >= 4 channels per group, at paper width and CPU width.

    Its last stage runs at full resolution on D/16 channels (32 at ViT-VAE-T, 8 at the CPU preset); with one channel
    per group (GN(32) / GN(8)) that stage was InstanceNorm, and the head lost to pixel shuffle (docs/RESULTS.md).
    """
    cfg = _load(path)
    if preset:
        apply_preset(cfg, preset)
    head_cfg = cfg.model.decoder.head_cfg
    assert head_cfg.type == 'SeqConvUpHead' and head_cfg.norm_cfg.min_group_channels == 4  # seen by the fingerprint
    dims = cfg.model.arch.embed_dims
    head = MODELS.build(head_cfg.to_dict(), default_args=dict(in_channels=dims, out_channels=3, patch_size=16))
    norms = [m for m in head.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 4 and norms[-1].num_channels == dims // 16  # log2(16) stages, ending at D/16 channels
    assert min(n.num_channels // n.num_groups for n in norms) >= 4


def test_gn_min_group_channels():
    """``min_group_channels`` caps the groups; the default keeps GN(32)'s behaviour; a bad value is refused."""
    assert MODELS.build(dict(type='GN', num_features=32)).num_groups == 32
    assert MODELS.build(dict(type='GN', num_features=32, min_group_channels=4)).num_groups == 8
    assert MODELS.build(dict(type='GN', num_features=8, num_groups=8, min_group_channels=4)).num_groups == 2
    assert MODELS.build(dict(type='GN', num_features=24, min_group_channels=5)).num_groups == 4  # divides 24
    assert MODELS.build(dict(type='GN', num_features=2, min_group_channels=4)).num_groups == 1
    with pytest.raises(ValueError, match='min_group_channels'):
        MODELS.build(dict(type='GN', num_features=8, min_group_channels=0))
