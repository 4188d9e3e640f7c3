from .vae import VAE, pad_to_multiple

__all__ = ['VAE', 'pad_to_multiple']

from .vae_gan import VAEGAN  # noqa: E402

__all__ += ['VAEGAN']
