from .adaptive_weight import adaptive_weight
from .gan_loss import HingeGANLoss
from .kl import KLLoss
from .lpips import LPIPS
from .reconstruction import ReconstructionNLL
from .vf_loss import VFLoss

__all__ = ['adaptive_weight', 'HingeGANLoss', 'KLLoss', 'LPIPS', 'ReconstructionNLL', 'VFLoss']
