"""The CNN-VAE backbone (``CNNEncoder`` / ``CNNDecoder``) computes LDM's function: diffusers' ``AutoencoderKL``.

The micro CNN-VAE of the studies (``configs/experiments/cnn_vae.py`` with ``--preset cpu``) reconstructs nearly
grayscale after 1250 iterations while TransVAE and the ViT-VAE have colour (docs/RESULTS.md, "Why some claims disagree
at this scale"). These tests rule out a wiring fault: with weights transferred name by name, our encoder and decoder
equal diffusers' ``Encoder`` / ``Decoder`` of the same architecture (LDM's ResNet blocks, GroupNorm(32) with eps 1e-6,
asymmetric-pad strided-conv down, nearest x2 + conv up, single-head attention), on the micro widths themselves and on
a small attention variant, including the GroupNorm partition: the CPU preset's GroupNorm(8) (diffusers'
``norm_num_groups=8``) on the micro widths, LDM's GroupNorm(32) (one channel per group at 32 channels) on the other.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from transvae.registry import MODELS
from transvae.apis import register_all_modules

register_all_modules()

#: ``configs/_base_/models/cnn-vae-noattn-t_f16d32.py`` under ``--preset cpu`` (the Fig. 1 / 3c / 4a cnn_vae).
MICRO = dict(base_channels=32, channel_mults=[1, 1, 2, 2, 4], num_res_blocks=1, latent_channels=32, attn_levels=[],
             mid_attn=False, norm_cfg=dict(type='GN', num_groups=8))
#: A small LDM layout with stage attention at the lowest level, two ResBlocks per level and mid attention.
ATTN = dict(base_channels=32, channel_mults=[1, 2], num_res_blocks=2, latent_channels=4, attn_levels=[1],
            mid_attn=True)


def _res(src: str, dst: str) -> dict[str, str]:
    """Our ResBlock's parameter names -> diffusers ResnetBlock2D's."""
    names = {'norm1': 'norm1', 'conv1': 'conv1', 'norm2': 'norm2', 'conv2': 'conv2', 'skip': 'conv_shortcut'}
    return {f'{src}.{a}.{p}': f'{dst}.{b}.{p}' for a, b in names.items() for p in ('weight', 'bias')}


def _attn(src: str, dst: str) -> dict[str, str]:
    """Our AttnBlock's parameter names -> diffusers Attention's."""
    names = {'norm': 'group_norm', 'q': 'to_q', 'k': 'to_k', 'v': 'to_v', 'proj_out': 'to_out.0'}
    return {f'{src}.{a}.{p}': f'{dst}.{b}.{p}' for a, b in names.items() for p in ('weight', 'bias')}


def _level(src: str, dst: str, num_res: int, attn: bool) -> dict[str, str]:
    """``levels.i.blocks`` interleaves ResBlock (and AttnBlock) per layer; diffusers keeps two lists."""
    out, j = {}, 0
    for r in range(num_res):
        out.update(_res(f'{src}.blocks.{j}', f'{dst}.resnets.{r}'))
        j += 1
        if attn:
            out.update(_attn(f'{src}.blocks.{j}', f'{dst}.attentions.{r}'))
            j += 1
    return out


def _name_map(arch: dict) -> dict[str, str]:
    """Every parameter of our ``encoder.`` / ``decoder.`` -> the same parameter in ``diffusers.AutoencoderKL``."""
    n, nr, attn, mid_attn = len(arch['channel_mults']), arch['num_res_blocks'], arch['attn_levels'], arch['mid_attn']
    m: dict[str, str] = {}
    for part in ('encoder', 'decoder'):
        for p in ('weight', 'bias'):
            m[f'{part}.conv_in.{p}'] = f'{part}.conv_in.{p}'
            m[f'{part}.norm_out.{p}'] = f'{part}.conv_norm_out.{p}'
            m[f'{part}.conv_out.{p}'] = f'{part}.conv_out.{p}'
        m.update(_res(f'{part}.mid.0', f'{part}.mid_block.resnets.0'))
        m.update(_res(f'{part}.mid.2', f'{part}.mid_block.resnets.1'))
        if mid_attn:
            m.update(_attn(f'{part}.mid.1', f'{part}.mid_block.attentions.0'))
    for i in range(n):  # encoder level i = diffusers down block i (highest resolution first)
        m.update(_level(f'encoder.levels.{i}', f'encoder.down_blocks.{i}', nr, i in attn))
        if i < n - 1:
            m.update({f'encoder.downs.{i}.conv.{p}': f'encoder.down_blocks.{i}.downsamplers.0.conv.{p}'
                      for p in ('weight', 'bias')})
    for k in range(n):  # decoder level k = diffusers up block k (lowest resolution first) = our channel level n-1-k
        m.update(_level(f'decoder.levels.{k}', f'decoder.up_blocks.{k}', nr + 1, (n - 1 - k) in attn))
        if k < n - 1:
            m.update({f'decoder.ups.{k}.conv.{p}': f'decoder.up_blocks.{k}.upsamplers.0.conv.{p}'
                      for p in ('weight', 'bias')})
    return m


def _groups(arch: dict) -> int:
    """The GroupNorm group count of ``arch`` (LDM's 32 unless its ``norm_cfg`` says otherwise)."""
    return arch.get('norm_cfg', {}).get('num_groups', 32)


def _build_pair(arch: dict, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """``(ours, reference)``: our encoder / decoder (in an ``nn.ModuleDict``) with the reference's weights."""
    diffusers = pytest.importorskip('diffusers')
    n = len(arch['channel_mults'])
    chs = tuple(arch['base_channels'] * c for c in arch['channel_mults'])
    down = tuple('AttnDownEncoderBlock2D' if i in arch['attn_levels'] else 'DownEncoderBlock2D' for i in range(n))
    up = tuple('AttnUpDecoderBlock2D' if i in arch['attn_levels'] else 'UpDecoderBlock2D' for i in reversed(range(n)))
    torch.manual_seed(seed)
    ref = diffusers.AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=chs, down_block_types=down,
                                  up_block_types=up, layers_per_block=arch['num_res_blocks'],
                                  norm_num_groups=_groups(arch),
                                  latent_channels=arch['latent_channels'], use_quant_conv=False,
                                  use_post_quant_conv=False, mid_block_add_attention=arch['mid_attn']).eval()
    with torch.no_grad():  # non-trivial norm affines and biases, so a swapped or skipped parameter shows
        for name, p in ref.named_parameters():
            if 'norm' in name or name.endswith('bias'):
                p.add_(torch.randn_like(p) * 0.1)
    ours = nn.ModuleDict(dict(encoder=MODELS.build(dict(type='CNNEncoder', down_cfg=dict(type='StridedConvDown'),
                                                        **arch)),
                              decoder=MODELS.build(dict(type='CNNDecoder', up_cfg=dict(type='InterpConvUp'),
                                                        **arch)))).eval()
    ref_sd, ours_sd = ref.state_dict(), ours.state_dict()
    # ``skip`` / ``conv_shortcut`` exist only where a ResBlock changes width: keep the names our model has.
    names = {k: v for k, v in _name_map(arch).items() if '.skip.' not in k or k in ours_sd}
    assert set(names) == set(ours_sd), set(names) ^ set(ours_sd)
    assert set(names.values()) == set(ref_sd), set(names.values()) ^ set(ref_sd)
    ours.load_state_dict({k: ref_sd[v].reshape(ours_sd[k].shape) for k, v in names.items()})  # Linear -> 1x1 conv
    return ours, ref


@pytest.mark.parametrize('arch', [MICRO, ATTN], ids=['micro_cnn_vae', 'attention_layout'])
def test_cnn_vae_equals_diffusers_autoencoder_kl(arch):
    ours, ref = _build_pair(arch)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    # The same GroupNorm partition everywhere (at 32 channels: 8 groups in the micro preset, 32 in LDM's default).
    gn = [(m.num_channels, m.num_groups) for m in ours.modules() if isinstance(m, nn.GroupNorm)]
    gn_ref = [(m.num_channels, m.num_groups) for m in ref.modules() if isinstance(m, nn.GroupNorm)]
    assert sorted(gn) == sorted(gn_ref) and (32, _groups(arch)) in gn
    f = 2 ** (len(arch['channel_mults']) - 1)
    x = torch.rand(2, 3, 2 * f, 3 * f) * 2 - 1  # non-square, so a transposed map would show
    with torch.no_grad():
        moments = ours['encoder'](x)
        moments_ref = ref.encoder(x)
        assert moments.shape == (2, 2 * arch['latent_channels'], 2, 3)
        torch.testing.assert_close(moments, moments_ref, atol=1e-5, rtol=1e-4)
        z = torch.randn(2, arch['latent_channels'], 2, 3)
        out, out_ref = ours['decoder'](z), ref.decoder(z)
    assert out.shape == (2, 3, 2 * f, 3 * f)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-4)
    assert out.std() > 0.05  # not a degenerate (constant) output that would match trivially


def test_reference_check_detects_a_wiring_fault():
    """The comparison is sensitive: one swapped pair of decoder weights (norm1 <-> norm2 affines of a ResBlock of the
    same width) makes the outputs differ well beyond the tolerance."""
    ours, ref = _build_pair(MICRO)
    blk = ours['decoder'].levels[-1].blocks[0]
    with torch.no_grad():
        w1, w2 = blk.norm1.weight.clone(), blk.norm2.weight.clone()
        blk.norm1.weight.copy_(w2)
        blk.norm2.weight.copy_(w1)
        z = torch.randn(2, MICRO['latent_channels'], 2, 2)
        diff = (ours['decoder'](z) - ref.decoder(z)).abs().max()
    assert diff > 1e-3
