"""A self-contained re-implementation of diffusers' ``AutoencoderKL`` (SD / SDXL / SD3.5 / FLUX VAEs).

Loads a local diffusers-format directory (``config.json`` + ``diffusion_pytorch_model.safetensors``) with its
state-dict keys unchanged (diffusers itself is not needed), and exposes it through the :class:`VAE` interface
(``encode`` -> :class:`DiagonalGaussian`, ``decode``, ``forward(mode='predict')``), so ``tools/test.py`` benchmarks
these VAEs exactly like a transvae model::

    model = dict(type='DiffusersAutoencoderKL', pretrained_path='checkpoints/FLUX.1-dev/vae')

Architecture (diffusers ``models/autoencoders/vae.py``, ``unet_2d_blocks.py``, ``resnet.py``): Encoder = conv_in ->
DownEncoderBlock2D x n (ResnetBlock2D x layers_per_block, then a stride-2 conv after a (0, 1, 0, 1) zero pad, except
the last) -> UNetMidBlock2D (Resnet, single-head self-attention, Resnet) -> GroupNorm -> SiLU -> conv_out (2d);
optional ``quant_conv`` (1 x 1). Decoder = optional ``post_quant_conv`` -> conv_in -> mid block -> UpDecoderBlock2D
x n (layers_per_block + 1 ResnetBlock2D, then nearest x2 + conv, except the last) -> GroupNorm -> SiLU -> conv_out.
GroupNorm eps 1e-6 everywhere. Latent normalisation for diffusion: ``(z - shift_factor) * scaling_factor``, stored in
the VAE's ``latent_mean`` / ``latent_std`` buffers (``shift``, ``1 / scaling``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transvae.registry import MODELS

from ..autoencoders.vae import VAE
from ..backbones.base import DecoderBase, EncoderBase

__all__ = ['DiffusersKLEncoder', 'DiffusersKLDecoder', 'DiffusersAutoencoderKL', 'convert_diffusers_state_dict']

_EPS = 1e-6


class ResnetBlock2D(nn.Module):
    """diffusers ``ResnetBlock2D`` without time embedding (pre-norm, SiLU, 1 x 1 shortcut when channels change)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=_EPS)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    """diffusers ``Attention`` as used in the VAE mid block: GroupNorm, one head of width C, residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=_EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)  # (B, HW, C)
        q, k, v = (m(t).unsqueeze(1) for m in (self.to_q, self.to_k, self.to_v))  # (B, 1, HW, C)
        o = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # scale 1/sqrt(C)
        o = self.to_out[1](self.to_out[0](o))
        return o.transpose(1, 2).reshape(b, c, h, w) + x


class MidBlock(nn.Module):
    """``UNetMidBlock2D``: Resnet -> [Attention] -> Resnet."""

    def __init__(self, channels: int, groups: int, add_attention: bool) -> None:
        super().__init__()
        self.attentions = nn.ModuleList([Attention(channels, groups)] if add_attention else [])
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, groups),
                                      ResnetBlock2D(channels, channels, groups)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.resnets[0](x)
        if len(self.attentions):
            x = self.attentions[0](x)
        return self.resnets[1](x)


class _Sampler(nn.Module):
    """``Downsample2D`` (pad (0, 1, 0, 1), conv s2, padding 0) or ``Upsample2D`` (nearest x2, conv)."""

    def __init__(self, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(channels, channels, 3, stride=2 if down else 1, padding=0 if down else 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.down:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class _Block(nn.Module):
    """``DownEncoderBlock2D`` / ``UpDecoderBlock2D``."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, groups: int, down: bool,
                 add_sampler: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(num_layers))
        samplers = nn.ModuleList([_Sampler(out_channels, down)] if add_sampler else [])
        self.sampler_name = 'downsamplers' if down else 'upsamplers'
        setattr(self, self.sampler_name, samplers)

    def forward(self, x: Tensor) -> Tensor:
        for r in self.resnets:
            x = r(x)
        for s in getattr(self, self.sampler_name):
            x = s(x)
        return x


def _check_blocks(types: Sequence[str], allowed: str, n: int) -> None:
    if len(types) != n or any(t != allowed for t in types):
        raise ValueError(f'only {allowed} blocks are supported ({n} expected), got {list(types)}')


@MODELS.register_module()
class DiffusersKLEncoder(EncoderBase):
    """diffusers ``Encoder`` (+ ``quant_conv``): ``(B, 3, H, W) -> (B, 2d, H/f, W/f)`` moments.

    Args mirror the diffusers ``AutoencoderKL`` config (``block_out_channels``, ``layers_per_block``,
    ``norm_num_groups``, ``latent_channels``, ``use_quant_conv``, ``mid_block_add_attention``, ...).
    """

    def __init__(self, block_out_channels: Sequence[int] = (128, 256, 512, 512), layers_per_block: int = 2,
                 latent_channels: int = 4, norm_num_groups: int = 32, in_channels: int = 3,
                 down_block_types: Sequence[str] | None = None, act_fn: str = 'silu', use_quant_conv: bool = True,
                 mid_block_add_attention: bool = True, **unused: Any) -> None:
        super().__init__()
        boc = list(block_out_channels)
        _check_blocks(down_block_types or ['DownEncoderBlock2D'] * len(boc), 'DownEncoderBlock2D', len(boc))
        if act_fn != 'silu':
            raise ValueError(f'only act_fn="silu" is supported, got {act_fn!r}')
        self.latent_channels = latent_channels
        self.downsample_factor = 2 ** (len(boc) - 1)
        self.conv_in = nn.Conv2d(in_channels, boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        prev = boc[0]
        for i, ch in enumerate(boc):
            self.down_blocks.append(_Block(prev, ch, layers_per_block, norm_num_groups, True, i < len(boc) - 1))
            prev = ch
        self.mid_block = MidBlock(boc[-1], norm_num_groups, mid_block_add_attention)
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, boc[-1], eps=_EPS)
        self.conv_out = nn.Conv2d(boc[-1], 2 * latent_channels, 3, padding=1)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1) if use_quant_conv else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for blk in self.down_blocks:
            h = blk(h)
        h = self.conv_out(F.silu(self.conv_norm_out(self.mid_block(h))))
        return self.quant_conv(h) if self.quant_conv is not None else h

    def get_last_layer(self) -> nn.Parameter:
        return (self.quant_conv if self.quant_conv is not None else self.conv_out).weight


@MODELS.register_module()
class DiffusersKLDecoder(DecoderBase):
    """diffusers ``Decoder`` (after ``post_quant_conv``): ``(B, d, h, w) -> (B, 3, f*h, f*w)``."""

    def __init__(self, block_out_channels: Sequence[int] = (128, 256, 512, 512), layers_per_block: int = 2,
                 latent_channels: int = 4, norm_num_groups: int = 32, out_channels: int = 3,
                 up_block_types: Sequence[str] | None = None, act_fn: str = 'silu',
                 use_post_quant_conv: bool = True, mid_block_add_attention: bool = True, **unused: Any) -> None:
        super().__init__()
        boc = list(block_out_channels)
        _check_blocks(up_block_types or ['UpDecoderBlock2D'] * len(boc), 'UpDecoderBlock2D', len(boc))
        if act_fn != 'silu':
            raise ValueError(f'only act_fn="silu" is supported, got {act_fn!r}')
        self.latent_channels = latent_channels
        self.upsample_factor = 2 ** (len(boc) - 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1) if use_post_quant_conv else None
        self.conv_in = nn.Conv2d(latent_channels, boc[-1], 3, padding=1)
        self.mid_block = MidBlock(boc[-1], norm_num_groups, mid_block_add_attention)
        rev = boc[::-1]
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, ch in enumerate(rev):
            self.up_blocks.append(_Block(prev, ch, layers_per_block + 1, norm_num_groups, False, i < len(rev) - 1))
            prev = ch
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, boc[0], eps=_EPS)
        self.conv_out = nn.Conv2d(boc[0], out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        h = self.mid_block(self.conv_in(z))
        for blk in self.up_blocks:
            h = blk(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))

    def get_last_layer(self) -> nn.Parameter:
        return self.conv_out.weight


_DEPRECATED_ATTN = {'query': 'to_q', 'key': 'to_k', 'value': 'to_v', 'proj_attn': 'to_out.0'}


def convert_diffusers_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """diffusers ``AutoencoderKL`` keys -> :class:`DiffusersAutoencoderKL` keys.

    ``quant_conv.*`` moves into the encoder, ``post_quant_conv.*`` into the decoder; the deprecated attention names of
    old checkpoints (``query`` / ``key`` / ``value`` / ``proj_attn``, possibly 1 x 1 conv-shaped) are renamed as
    diffusers does on load.
    """
    out: dict[str, Tensor] = {}
    for key, val in state.items():
        if key.startswith('quant_conv.'):
            key = 'encoder.' + key
        elif key.startswith('post_quant_conv.'):
            key = 'decoder.' + key
        parts = key.split('.')
        if 'attentions' in parts and len(parts) >= 2 and parts[-2] in _DEPRECATED_ATTN:
            parts[-2] = _DEPRECATED_ATTN[parts[-2]]
            key = '.'.join(parts)
            if parts[-1] == 'weight' and val.dim() == 4:
                val = val[:, :, 0, 0]
        out[key] = val
    return out


@MODELS.register_module()
class DiffusersAutoencoderKL(VAE):
    """A diffusers ``AutoencoderKL`` as a transvae :class:`VAE` (same ``encode`` / ``decode`` / predict interface).

    Args:
        pretrained_path: a local diffusers VAE directory (``config.json`` and ``diffusion_pytorch_model.safetensors``,
            or ``.bin`` loaded with ``weights_only=True``); or ``None`` with ``config`` (random weights).
        config: the diffusers config dict (overrides / replaces ``config.json`` keys).
        strict: require every key of the weight file to match.
        **kwargs: other :class:`VAE` arguments (``rec_loss``, ``data_preprocessor`` ...).

    Attributes:
        scaling_factor, shift_factor: diffusers' latent normalisation (``(z - shift) * scaling``), also stored in
            ``latent_mean`` = shift and ``latent_std`` = 1 / scaling (``VAE.normalize_latent``).
    """

    def __init__(self, pretrained_path: str | None = None, config: dict | None = None, strict: bool = True,
                 **kwargs: Any) -> None:
        cfg: dict[str, Any] = {}
        if pretrained_path is not None:
            cfg_file = os.path.join(pretrained_path, 'config.json')
            if not os.path.isfile(cfg_file):
                raise FileNotFoundError(f'{cfg_file} not found: pretrained_path must be a local diffusers VAE '
                                        'directory (config.json + diffusion_pytorch_model.safetensors)')
            with open(cfg_file) as f:
                cfg = json.load(f)
        cfg.update(config or {})
        if not cfg:
            raise ValueError('give pretrained_path or config')
        cfg = {k: v for k, v in cfg.items() if not k.startswith('_')}
        arch = {k: cfg[k] for k in ('block_out_channels', 'layers_per_block', 'latent_channels', 'norm_num_groups',
                                    'act_fn', 'mid_block_add_attention') if k in cfg}
        enc = dict(type='DiffusersKLEncoder', in_channels=cfg.get('in_channels', 3),
                   down_block_types=cfg.get('down_block_types'), use_quant_conv=cfg.get('use_quant_conv', True))
        dec = dict(type='DiffusersKLDecoder', out_channels=cfg.get('out_channels', 3),
                   up_block_types=cfg.get('up_block_types'),
                   use_post_quant_conv=cfg.get('use_post_quant_conv', True))
        super().__init__(encoder=enc, decoder=dec, arch=arch, **kwargs)
        self.diffusers_config = cfg
        self.scaling_factor = float(cfg.get('scaling_factor', 0.18215))
        self.shift_factor = float(cfg.get('shift_factor') or 0.0)
        d = self.latent_channels
        self.set_latent_stats(torch.full((d,), self.shift_factor), torch.full((d,), 1.0 / self.scaling_factor))
        if pretrained_path is not None:
            self.load_diffusers_weights(pretrained_path, strict=strict)

    def load_diffusers_weights(self, path: str, strict: bool = True) -> None:
        """Load ``diffusion_pytorch_model.safetensors`` (or ``.bin``) from a diffusers VAE directory."""
        st = os.path.join(path, 'diffusion_pytorch_model.safetensors')
        binf = os.path.join(path, 'diffusion_pytorch_model.bin')
        if os.path.isfile(st):
            from safetensors.torch import load_file
            state = load_file(st, device='cpu')
        elif os.path.isfile(binf):
            state = torch.load(binf, map_location='cpu', weights_only=True)
        else:
            raise FileNotFoundError(f'no diffusion_pytorch_model.safetensors / .bin in {path}')
        state = convert_diffusers_state_dict(state)
        own = {k for k in self.state_dict() if k.startswith(('encoder.', 'decoder.'))}
        missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
        if strict and (missing or unexpected):
            raise RuntimeError(f'{path}: missing keys {missing[:10]} ({len(missing)}), unexpected keys '
                               f'{unexpected[:10]} ({len(unexpected)})')
        self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
