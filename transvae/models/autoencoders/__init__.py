from .vae import VAE, pad_to_multiple

__all__ = ['VAE', 'pad_to_multiple']
