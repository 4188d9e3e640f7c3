"""The frozen VAE that turns generated (normalised) latents back into images."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..datasets.normalization import LatentNormalizer


class FrozenLatentDecoder(nn.Module):
    """Denormalise DiT samples with the latent statistics, decode them with a frozen VAE, map to ``[0, 1]``.

    Any registered VAE with ``decode(z) -> (B, 3, H, W)`` in ``[-1, 1]`` works (TransVAE, CNN-VAE, ViT/Swin-VAE,
    the diffusers adapter); build it from a config with :meth:`from_config`.

    Args:
        vae: the autoencoder (put in eval mode, gradients off).
        normalizer: the statistics the DiT was trained with (``None``: latents are not normalised).
    """

    def __init__(self, vae: nn.Module, normalizer: LatentNormalizer | None) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.normalizer = normalizer

    @classmethod
    def from_config(cls, config: str, checkpoint: str | None, latent_dir: str | None = None,
                    latent_multiplier: float = 1.0, device: str | torch.device = 'cpu',
                    preset: str | None = None) -> 'FrozenLatentDecoder':
        """Load the VAE of ``config`` (``checkpoint`` ``None`` / ``'none'``: a model that loads its own weights, e.g.
        the diffusers adapter) and the statistics stored in ``latent_dir``."""
        from transvae.apis import init_model
        ckpt = None if checkpoint in (None, '', 'none', 'None') else checkpoint
        vae = init_model(config, ckpt, device=device, preset=preset)
        norm = LatentNormalizer.from_dir(latent_dir, latent_multiplier) if latent_dir else None
        return cls(vae, norm)

    def train(self, mode: bool = True) -> 'FrozenLatentDecoder':
        return super().train(False)

    @torch.no_grad()
    def forward(self, z: Tensor, chunk_size: int = 16) -> Tensor:
        """``(B, C, h, w)`` normalised latents -> ``(B, 3, H, W)`` float images in ``[0, 1]``."""
        device = next(self.vae.parameters()).device
        out = []
        for chunk in torch.split(z, chunk_size):
            chunk = chunk.to(device).float()
            if self.normalizer is not None:
                chunk = self.normalizer.denormalize(chunk)
            out.append(((self.vae.decode(chunk).float().clamp(-1, 1) + 1) / 2).cpu())
        return torch.cat(out)
