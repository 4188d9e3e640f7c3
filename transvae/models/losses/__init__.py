from .kl import KLLoss
from .reconstruction import ReconstructionNLL

__all__ = ['KLLoss', 'ReconstructionNLL']

try:  # written alongside; optional until its weights package is installed
    from .lpips import LPIPS  # noqa: F401
    __all__.append('LPIPS')
except ImportError:  # pragma: no cover
    pass
