from .attn_block import AttnBlock
from .base import Block, ConvBlock, TokenBlock
from .resblock import ResBlock
from .stages import ConvStage, TransformerStage
from .transformer_block import TransVAEBlock, ViTBlock

from .swin_block import SwinBlock

__all__ = ['Block', 'ConvBlock', 'TokenBlock', 'AttnBlock', 'ResBlock', 'ConvStage', 'TransformerStage',
           'TransVAEBlock', 'ViTBlock']
__all__ += ['SwinBlock']
