"""What the benchmark measures: a VAE's encoder and decoder as plain callables, ours or the SD-VAE reference.

:class:`CodecTarget` gives every model the same interface (``enc`` / ``dec`` modules, the compression factor and
latent channels, deterministic inputs), so the timing, memory and complexity code never asks which model it holds.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

__all__ = ['SD_VAE_ARCH', 'CodecTarget', 'build_ours', 'build_sdvae', 'codec_macs', 'macs_of', 'train_step_flops']

#: diffusers ``AutoencoderKL`` arguments of the SD-VAE (f8, 4 latent channels) used as the reference
SD_VAE_ARCH = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                   down_block_types=('DownEncoderBlock2D', ) * 4, up_block_types=('UpDecoderBlock2D', ) * 4)


def build_ours(config: str, checkpoint: Optional[str], preset: Optional[str], cfg_options: dict,
               device: str) -> Any:
    """A transvae model from its config (random weights without ``checkpoint``), in eval mode on ``device``."""
    from transvae.apis import init_model
    return init_model(config, checkpoint, device=device, cfg_options=cfg_options or None, preset=preset)


class _SDEnc(torch.nn.Module):
    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.vae.encoder(x)
        return self.vae.quant_conv(h) if self.vae.quant_conv is not None else h


class _SDDec(torch.nn.Module):
    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = self.vae.post_quant_conv(z) if self.vae.post_quant_conv is not None else z
        return self.vae.decoder(z)


class CodecTarget:
    """Uniform encode / decode callables for our VAE and the SD-VAE reference.

    Args:
        kind: ``'ours'`` (a transvae VAE: ``encoder`` / ``decoder``) or ``'sdvae'`` (diffusers ``AutoencoderKL``).
        model: the model.
        factor: spatial compression factor.
        latent: latent channels.
    """

    def __init__(self, kind: str, model: torch.nn.Module, factor: int, latent: int) -> None:
        self.kind, self.model, self.factor, self.latent = kind, model, factor, latent
        if kind == 'sdvae':
            self.enc, self.dec = _SDEnc(model), _SDDec(model)
        else:
            self.enc, self.dec = model.encoder, model.decoder

    def inputs(self, mode: str, b: int, res: int, device: str, channels_last: bool = False) -> torch.Tensor:
        """Seeded inputs: images ``(b, 3, res, res)`` in [-1, 1] to encode, or latents ``(b, latent, res/f, res/f)``."""
        g = torch.Generator().manual_seed(0)
        if mode == 'encode':
            x = torch.rand(b, 3, res, res, generator=g) * 2 - 1
        else:
            s = res // self.factor
            x = torch.randn(b, self.latent, s, s, generator=g)
        x = x.to(device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def build_sdvae(device: str) -> Optional[CodecTarget]:
    """The SD-VAE reference (random weights, seed 0), or ``None`` with a message when diffusers is missing."""
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        print('[benchmark] diffusers is not installed: SD-VAE reference skipped (pip install diffusers)')
        return None
    torch.manual_seed(0)
    vae = AutoencoderKL(**SD_VAE_ARCH).to(device).eval()
    return CodecTarget('sdvae', vae, 8, 4)


def macs_of(target: CodecTarget, mode: str, res: int) -> int:
    """MACs of one encode or decode at ``res``² (batch 1): exact ``a·P + b·P²`` fit from two small traces."""
    from transvae.utils.complexity import count_macs
    f = target.factor
    r1, r2 = 4 * f, 8 * f
    mod = target.enc if mode == 'encode' else target.dec

    def at(r: int) -> int:
        shape = (1, 3, r, r) if mode == 'encode' else (1, target.latent, r // f, r // f)
        return count_macs(mod, shape)['total']

    key = (mode, r1, r2)
    cache = target.__dict__.setdefault('_macs', {})
    if key not in cache:
        cache[key] = (at(r1), at(r2))
    m1, m2 = cache[key]
    p1, p2 = float(r1 * r1), float(r2 * r2)
    b = max((m2 / p2 - m1 / p1) / (p2 - p1), 0.0)
    a = m1 / p1 - b * p1
    p = float(res * res)
    return int(round(a * p + b * p * p))


def codec_macs(target: CodecTarget, res: int, batch: int = 1) -> int:
    """MACs of one encode plus one decode of ``batch`` images at ``res``² (:func:`macs_of`); a training step's
    forward when ``batch`` is its batch."""
    return (macs_of(target, 'encode', res) + macs_of(target, 'decode', res)) * batch


def train_step_flops(forward_macs: int) -> float:
    """FLOPs of one training step whose forward costs ``forward_macs`` MACs: 2 FLOPs per MAC, and the backward
    pass costs about twice the forward (input and weight gradients), so 3 forwards in all."""
    return 3 * 2 * float(forward_macs)
