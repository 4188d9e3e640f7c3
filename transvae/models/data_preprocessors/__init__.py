from .vae_preprocessor import VAEDataPreprocessor

__all__ = ['VAEDataPreprocessor']
