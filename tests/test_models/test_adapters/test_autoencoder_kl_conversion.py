"""Public LDM-architecture VAEs as our CNN-VAE, checked against diffusers' own code (optional: needs ``diffusers``).

* SD / SDXL / SD3.5 / FLUX: diffusers' ``AutoencoderKL`` built from each model's published ``vae/config.json``
  (``DIFFUSERS_VAE_CONFIGS``) with every width divided by 4 (128, 256, 512, 512 -> 32, 64, 128, 128; all other keys
  as published, GroupNorm(32) included), random weights; converted with :func:`vae_from_diffusers`, our model's
  posterior (mean, logvar) and decoding equal diffusers' (max |diff| / max |value|: float32 1e-5, float64 1e-12),
  and the latent normalisation equals ``(z - shift_factor) * scaling_factor``. The full widths are measured by
  ``tools/model_converters/conversion_fidelity.py``.
* LDM / VA-VAE keys: our import equals diffusers' single-file conversion (``convert_ldm_vae_checkpoint``) of the same
  state dict, attention in a down / up level (which that function leaves unconverted: completed with diffusers' own
  ``update_vae_attentions_ldm_to_diffusers``) and 1x1-conv-shaped attention weights included.
* VA-VAE: with ``LIGHTNINGDIT_OFFICIAL_REPO`` (a hustvl/LightningDiT checkout), the official tokenizer
  (``tokenizer/autoencoder.py``, the f16d32 VA-VAE at full size) and our import of its state dict agree.
* The benchmark configs build exactly the models the conversion builds from the published configs.
"""
from __future__ import annotations

import importlib.util
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch import nn

from transvae.apis import register_all_modules
from transvae.models.adapters import (DIFFUSERS_VAE_CONFIGS, LDM_VAE_CONFIGS, ConversionError, StateDictKeyError,
                                      from_diffusers_state_dict, ldm_state_dict_of, native_config_from_diffusers,
                                      native_config_from_ldm, to_diffusers_state_dict, to_ldm_state_dict,
                                      vae_from_diffusers, vae_from_ldm, vae_to_diffusers)
from transvae.registry import MODELS

register_all_modules()
pytestmark = pytest.mark.usefixtures('one_thread')  # tiny ops on a shared 2-core machine
REPO = osp.join(osp.dirname(__file__), '..', '..', '..')
NO_DIFFUSERS = 'diffusers is optional (requirements/optional.txt)'
OFFICIAL_REPO = os.environ.get('LIGHTNINGDIT_OFFICIAL_REPO')
#: a small LDM layout with attention in the second level (down and up), mid attention and LDM's quant convs
LDM_ATTN = dict(type='VAE', arch=dict(base_channels=32, channel_mults=[1, 2, 2], num_res_blocks=1, latent_channels=4,
                                      attn_levels=[1], mid_attn=True, norm_cfg=dict(type='GN', num_groups=8)),
                encoder=dict(type='CNNEncoder', quant_conv=True), decoder=dict(type='CNNDecoder', post_quant_conv=True))


def _perturb(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial norm affines and biases, so that a swapped or skipped parameter shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name or name.endswith('bias'):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def _scaled(name: str) -> dict:
    cfg = dict(DIFFUSERS_VAE_CONFIGS[name])
    cfg['block_out_channels'] = [c // 4 for c in cfg['block_out_channels']]
    return cfg


def _diffusers_vae(cfg: dict, seed: int = 0) -> nn.Module:
    diffusers = pytest.importorskip('diffusers', reason=NO_DIFFUSERS)
    torch.manual_seed(seed)
    return _perturb(diffusers.AutoencoderKL(**{k: v for k, v in cfg.items() if not k.startswith('_')})).eval()


def _compare(ours: nn.Module, ref: nn.Module, latent_channels: int, tol: float,
             size: tuple[int, int] = (16, 24)) -> None:
    """Posterior mean / logvar and decoding of ``ours`` and diffusers' ``ref`` agree: ``max |diff| <= tol x max |ref|``
    (float rounding grows with the values; float32: 1e-5, float64: 1e-12)."""
    g = torch.Generator().manual_seed(0)
    dtype = next(ours.parameters()).dtype
    x = (torch.rand(2, 3, *size, generator=g) * 2 - 1).to(dtype)  # non-square: a transposed map would show
    z = torch.randn(2, latent_channels, size[0] // 8, size[1] // 8, generator=g).to(dtype)
    with torch.no_grad():
        post, post_ref = ours.encode(x), ref.encode(x).latent_dist
        pairs = [(post.mean, post_ref.mean), (post.logvar, post_ref.logvar), (ours.decode(z), ref.decode(z).sample)]
    for a, b in pairs:
        assert a.shape == b.shape
        assert (a - b).abs().max() <= tol * b.abs().max(), ((a - b).abs().max(), b.abs().max())
    assert pairs[2][0].std() > 0.05 and post.mean.std() > 0.01  # not a degenerate output that matches trivially


@pytest.mark.parametrize('name', ['sd', 'sdxl', 'sd35', 'flux'])
def test_public_vae_equals_diffusers_autoencoder_kl(name):
    cfg = _scaled(name)
    ref = _diffusers_vae(cfg)
    ours, model_cfg = vae_from_diffusers(cfg, ref.state_dict(), name=name)
    assert sum(p.numel() for p in ours.encoder.parameters()) + sum(p.numel() for p in ours.decoder.parameters()) \
        == sum(p.numel() for p in ref.parameters())
    assert (ours.encoder.quant_conv is not None) == cfg.get('use_quant_conv', True)
    _compare(ours, ref, cfg['latent_channels'], 1e-5)
    _compare(ours.double(), ref.double(), cfg['latent_channels'], 1e-12)
    z = torch.randn(1, cfg['latent_channels'], 2, 2, dtype=torch.float64)
    shift = cfg.get('shift_factor') or 0.0
    torch.testing.assert_close(ours.normalize_latent(z), (z - shift) * cfg['scaling_factor'], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('name,arch', [('sd', 'sd-vae_f8d4'), ('sdxl', 'sdxl-vae_f8d4'), ('sd35', 'sd35-vae_f8d16'),
                                       ('flux', 'flux-vae_f8d16'), ('vavae', 'vavae_f16d32')])
def test_benchmark_config_builds_the_published_architecture(name, arch):
    """The benchmark config's model is, module for module, the one the conversion builds from the published
    config (widths, GroupNorm groups and eps, attention, quant convs)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'benchmarks', f'{arch}.py'))
    conv = (native_config_from_ldm(LDM_VAE_CONFIGS[name]['ddconfig'], LDM_VAE_CONFIGS[name]['embed_dim'])
            if name in LDM_VAE_CONFIGS else native_config_from_diffusers(DIFFUSERS_VAE_CONFIGS[name]))
    for part in ('encoder', 'decoder'):  # the backbones only (the config's LPIPS loss is no part of the question)
        with torch.device('meta'):
            ours = MODELS.build(cfg.model[part], default_args=cfg.model.arch)
            expected = MODELS.build(conv[part], default_args=conv['arch'])
        assert str(ours) == str(expected)
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: v.shape for k, v in expected.state_dict().items()}


def _ldm_reference(ldm: dict, model: nn.Module) -> dict:
    """diffusers' single-file conversion of ``ldm``; stage attention, which ``convert_ldm_vae_checkpoint`` leaves
    under its LDM names, converted by diffusers' own ``update_vae_attentions_ldm_to_diffusers``."""
    sfu = pytest.importorskip('diffusers.loaders.single_file_utils', reason=NO_DIFFUSERS)
    n = len(model.encoder.levels)
    config = dict(down_block_types=['DownEncoderBlock2D'] * n, up_block_types=['UpDecoderBlock2D'] * n)
    ref = sfu.convert_ldm_vae_checkpoint(ldm, config)
    stray = sorted(k for k in ref if '.attn.' in k)  # e.g. encoder.down.1.attn.0.q.weight: not a diffusers key
    assert stray, 'diffusers now converts stage attention itself: drop the completion below'
    for k in stray:
        del ref[k]
    vae_ldm = {k.split('.', 1)[1]: v for k, v in ldm.items() if k.startswith('first_stage_model.')} or ldm
    for i in range(n):
        keys = [k for k in vae_ldm if k.startswith(f'encoder.down.{i}.attn.')]
        sfu.update_vae_attentions_ldm_to_diffusers(keys, ref, vae_ldm, {'old': f'down.{i}.attn',
                                                                         'new': f'down_blocks.{i}.attentions'})
        keys = [k for k in vae_ldm if k.startswith(f'decoder.up.{n - 1 - i}.attn.')]
        sfu.update_vae_attentions_ldm_to_diffusers(keys, ref, vae_ldm, {'old': f'up.{n - 1 - i}.attn',
                                                                         'new': f'up_blocks.{i}.attentions'})
    return ref


@pytest.mark.parametrize('whole_sd_checkpoint', [False, True], ids=['vae_checkpoint', 'first_stage_model'])
def test_ldm_import_equals_diffusers_single_file_conversion(whole_sd_checkpoint):
    diffusers = pytest.importorskip('diffusers', reason=NO_DIFFUSERS)
    torch.manual_seed(0)
    src = _perturb(MODELS.build(LDM_ATTN))
    ldm = to_ldm_state_dict(src)
    assert ldm['encoder.down.1.attn.0.q.weight'].shape == (64, 64, 1, 1)  # LDM's 1x1-conv attention
    assert ldm['decoder.up.1.attn.1.proj_out.weight'].shape == (64, 64, 1, 1)  # decoder.up is by resolution
    ldm.update({'loss.logvar': torch.zeros(()), 'loss.discriminator.main.0.weight': torch.randn(8, 3, 4, 4)})
    if whole_sd_checkpoint:
        ldm = {f'first_stage_model.{k}': v for k, v in ldm.items()}
        ldm['model.diffusion_model.out.0.weight'] = torch.randn(4)
    ours, model_cfg, dropped = vae_from_ldm(ldm, norm_groups=8)  # the architecture read off the keys
    assert model_cfg['arch']['attn_levels'] == [1] and model_cfg['encoder']['quant_conv']
    assert dropped == ({'first_stage_model.loss.': 2, 'model.': 1} if whole_sd_checkpoint else {'loss.': 2})
    ref_sd = _ldm_reference(ldm, ours)
    mine = to_diffusers_state_dict(ours)
    assert set(mine) == set(ref_sd)
    assert all(torch.equal(mine[k], ref_sd[k]) for k in ref_sd)  # same tensors, Linear-shaped attention
    ref = diffusers.AutoencoderKL(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8,
                                  latent_channels=4, down_block_types=('DownEncoderBlock2D', 'AttnDownEncoderBlock2D',
                                                                       'DownEncoderBlock2D'),
                                  up_block_types=('UpDecoderBlock2D', 'AttnUpDecoderBlock2D', 'UpDecoderBlock2D'))
    ref.load_state_dict(ref_sd, strict=True)
    _compare(ours, ref.eval(), 4, 1e-5)
    # the import is exactly the model the LDM weights came from (same function, same tensors)
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in ours.state_dict().items() if 'latent' not in k)


def test_ldm_config_gives_the_same_architecture_as_the_keys():
    torch.manual_seed(0)
    ldm = to_ldm_state_dict(MODELS.build(LDM_ATTN))
    ddconfig = dict(double_z=True, z_channels=4, resolution=64, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2, 2],
                    num_res_blocks=1, attn_resolutions=[32], dropout=0.0)
    a = vae_from_ldm(ldm, dict(ddconfig=ddconfig, embed_dim=4), norm_groups=8, scaling_factor=0.5)[0]
    b = vae_from_ldm(ldm, norm_groups=8)[0]
    assert str(a.encoder) == str(b.encoder) and str(a.decoder) == str(b.decoder)
    assert torch.equal(a.latent_std, torch.full((4,), 2.0))
    with pytest.raises(ConversionError, match='embed_dim 8 != z_channels 4'):
        vae_from_ldm(ldm, dict(ddconfig=ddconfig, embed_dim=8))
    with pytest.raises(ConversionError, match='tanh_out'):
        vae_from_ldm(ldm, dict(ddconfig=dict(ddconfig, tanh_out=True), embed_dim=4))


def test_ldm_keys_that_do_not_fit_are_listed():
    torch.manual_seed(0)
    ldm = to_ldm_state_dict(MODELS.build(LDM_ATTN))
    ldm['encoder.down.0.extra.weight'] = torch.zeros(1)
    del ldm['decoder.up.0.block.1.conv2.bias']
    with pytest.raises(StateDictKeyError) as e:
        vae_from_ldm(ldm, norm_groups=8, name='vae.ckpt')
    msg = str(e.value)
    assert 'vae.ckpt' in msg and '1 missing: decoder.up.0.block.1.conv2.bias' in msg
    assert '1 unexpected: encoder.down.0.extra.weight' in msg


def test_deprecated_and_conv_shaped_diffusers_attention_names():
    """Old diffusers files (``query`` / ``key`` / ``value`` / ``proj_attn``), some with 1x1-conv-shaped weights:
    the same model as the current names."""
    torch.manual_seed(0)
    model = MODELS.build(native_config_from_diffusers(_scaled('sd')))
    current = to_diffusers_state_dict(_perturb(model))
    old = {}
    for k, v in current.items():
        for new, dep in (('to_q', 'query'), ('to_k', 'key'), ('to_v', 'value'), ('to_out.0', 'proj_attn')):
            if f'.attentions.0.{new}.' in k:
                k = k.replace(f'.{new}.', f'.{dep}.')
                v = v[:, :, None, None] if v.dim() == 2 else v
        old[k] = v
    assert any('.query.' in k and v.dim() == 4 for k, v in old.items())
    back = from_diffusers_state_dict(model, old)
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items() if k in back)
    assert len(back) == len([k for k in model.state_dict() if k.startswith(('encoder.', 'decoder.'))])


def test_round_trip_diffusers_to_ours_to_diffusers_is_bit_identical():
    cfg = _scaled('sdxl')
    cfg['down_block_types'] = ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'AttnDownEncoderBlock2D',
                               'DownEncoderBlock2D']  # stage attention on the encoder side only
    ref = _diffusers_vae(cfg)
    ours, model_cfg = vae_from_diffusers(cfg, ref.state_dict())
    assert model_cfg['arch']['attn_levels'] == [2] and model_cfg['decoder']['attn_levels'] == []
    config, state = vae_to_diffusers(ours)
    ref_sd = ref.state_dict()
    assert set(state) == set(ref_sd) and all(torch.equal(state[k], ref_sd[k]) for k in ref_sd)
    for key in ('block_out_channels', 'down_block_types', 'up_block_types', 'latent_channels', 'layers_per_block',
                'norm_num_groups', 'scaling_factor', 'use_quant_conv', 'use_post_quant_conv'):
        assert config[key] == cfg.get(key, ref.config[key]), key


def test_non_cnn_vae_is_refused():
    model = MODELS.build(Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models',
                                                  'transvae-micro_f8d16.py')).model)
    with pytest.raises(ConversionError, match='only a VAE with CNNEncoder and CNNDecoder'):
        vae_to_diffusers(model)
    cnn = dict(LDM_ATTN, decoder=dict(type='CNNDecoder', up_cfg=dict(type='DCUpsample')))
    with pytest.raises(ConversionError, match=r'decoder.ups.0 \(DCUpsample\)'):
        to_diffusers_state_dict(MODELS.build(cnn))


@pytest.mark.skipif(not OFFICIAL_REPO, reason='set LIGHTNINGDIT_OFFICIAL_REPO to a hustvl/LightningDiT checkout')
def test_vavae_official_tokenizer_equals_our_import():
    spec = importlib.util.spec_from_file_location('_official_vavae_autoencoder',
                                                  osp.join(OFFICIAL_REPO, 'tokenizer', 'autoencoder.py'))
    official = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(official)
    torch.manual_seed(0)
    ref = _perturb(official.AutoencoderKL(embed_dim=32, ch_mult=(1, 1, 2, 2, 4))).eval()  # as tokenizer/vavae.py
    ckpt = {'state_dict': {**ref.state_dict(), 'loss.logvar': torch.zeros(()),
                           'foundation_model.model.weight': torch.zeros(2)}}
    ours, model_cfg, dropped = vae_from_ldm(ldm_state_dict_of(ckpt))
    assert dropped == {'loss.': 1, 'foundation_model.': 1}
    assert model_cfg['arch']['attn_levels'] == [4] and model_cfg['arch']['channel_mults'] == [1, 1, 2, 2, 4]
    g = torch.Generator().manual_seed(0)
    x, z = torch.rand(1, 3, 32, 48, generator=g) * 2 - 1, torch.randn(1, 32, 2, 3, generator=g)
    with torch.no_grad():
        post, post_ref = ours.encode(x), ref.encode(x)
        pairs = [(post.mean, post_ref.mean), (post.logvar, post_ref.logvar), (ours.decode(z), ref.decode(z))]
    for a, b in pairs:
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


@pytest.mark.parametrize('mid_attn', [True, False], ids=['mid_attention', 'all_local'])
def test_quant_convs_tile_exactly(mid_attn):
    """The SD / VA-VAE quant convs sit in the encoder head and the decoder stem: exact tiling (``--tile``) gives the
    untiled encoding and decoding, with the 1x1 convs in the whole-map part or, without any attention, in the tiles."""
    model = MODELS.build(dict(LDM_ATTN, arch=dict(LDM_ATTN['arch'], base_channels=16, attn_levels=[],
                                                  mid_attn=mid_attn, channel_mults=[1, 2, 2]))).eval()
    _perturb(model)
    g = torch.Generator().manual_seed(0)
    x, latent = torch.rand(1, 3, 48, 64, generator=g) * 2 - 1, torch.randn(1, 4, 12, 16, generator=g)
    with torch.no_grad():
        z, out = model.encode(x).mean, model.decode(latent)
        model.enable_tiling(tile=16, mode='exact')
        z_t, out_t = model.encode(x).mean, model.decode(latent)
    torch.testing.assert_close(z_t, z, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_t, out, atol=1e-5, rtol=0)
