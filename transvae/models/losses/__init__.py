from .kl import KLLoss
from .reconstruction import ReconstructionNLL

__all__ = ['KLLoss', 'ReconstructionNLL']

try:  # written alongside; optional until its weights package is installed
    from .lpips import LPIPS  # noqa: F401
    __all__.append('LPIPS')
except ImportError:  # pragma: no cover
    pass

from .adaptive_weight import adaptive_weight  # noqa: E402
from .gan_loss import HingeGANLoss  # noqa: E402
from .vf_loss import VFLoss  # noqa: E402

__all__ += ['adaptive_weight', 'HingeGANLoss', 'VFLoss']
