"""Discriminators for the GAN stage (stage 2)."""
from .patchgan import PatchGANDiscriminator

__all__ = ['PatchGANDiscriminator']
