"""Models: layers, blocks, encoders / decoders, losses and the VAE (all registered in ``transvae.registry.MODELS``)."""
from . import autoencoders, backbones, blocks, data_preprocessors, layers, losses  # noqa: F401
from .autoencoders import VAE
from .distributions import DiagonalGaussian

__all__ = ['VAE', 'DiagonalGaussian']

from . import adapters, discriminators, foundation  # noqa: E402,F401
from .autoencoders import VAEGAN  # noqa: E402
from .averaged_model import TrainableEMA  # noqa: E402

__all__ += ['VAEGAN', 'TrainableEMA']
