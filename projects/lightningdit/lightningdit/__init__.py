"""LightningDiT on transvae latents (paper Fig. 6): models, transport, latent datasets, FID evaluation, hooks.

Importing this package registers everything into the core ``transvae`` registries; configs load it with
``custom_imports = dict(imports=['projects.lightningdit.lightningdit'])``.
"""
from . import datasets, evaluation, hooks, models, transport  # noqa: F401  (registration)

__all__ = ['datasets', 'evaluation', 'hooks', 'models', 'transport']
