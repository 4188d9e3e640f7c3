from .base import DecoderBase, EncoderBase
from .cnn import CNNDecoder, CNNEncoder
from .hybrid import TransVAEDecoder, TransVAEEncoder

__all__ = ['DecoderBase', 'EncoderBase', 'CNNDecoder', 'CNNEncoder', 'TransVAEDecoder', 'TransVAEEncoder']
