"""transvae: an MMEngine toolkit for TransVAE and the image-VAE baselines it is compared with."""
__version__ = '0.1.0'
