from .base import DecoderBase, EncoderBase, Segment
from .cnn import CNNDecoder, CNNEncoder
from .hybrid import TransVAEDecoder, TransVAEEncoder

from .swin import SwinDecoder, SwinEncoder
from .vit import ViTDecoder, ViTEncoder

__all__ = ['DecoderBase', 'EncoderBase', 'Segment', 'CNNDecoder', 'CNNEncoder', 'TransVAEDecoder', 'TransVAEEncoder']
__all__ += ['SwinDecoder', 'SwinEncoder', 'ViTDecoder', 'ViTEncoder']
