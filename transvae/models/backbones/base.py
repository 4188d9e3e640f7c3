"""What every encoder and decoder exposes to the VAE."""
from __future__ import annotations

from torch import nn


class EncoderBase(nn.Module):
    """An image encoder ``(B, 3, H, W) -> (B, 2d, H/f, W/f)`` (mean and log-variance stacked on channels).

    Subclasses set ``downsample_factor`` (f), ``latent_channels`` (d) and return their last conv from
    ``get_last_layer()`` (the weight the VF loss's adaptive weight differentiates against).
    """

    downsample_factor: int
    latent_channels: int

    def get_last_layer(self) -> nn.Parameter:
        raise NotImplementedError


class DecoderBase(nn.Module):
    """A latent decoder ``(B, d, h, w) -> (B, 3, f*h, f*w)`` in ``[-1, 1]`` (linear output).

    ``get_last_layer()`` returns the final conv weight (for the GAN's adaptive weight).
    """

    upsample_factor: int
    latent_channels: int

    def get_last_layer(self) -> nn.Parameter:
        raise NotImplementedError
