from .attention import MultiHeadSelfAttention
from .ffn import DWConvFFN, FullConvFFN, PointwiseFFN
from .norm import RMSNorm, RMSNorm2d, GroupNorm, LayerNorm, LayerNorm2d, build_act, build_norm, gn_groups
from .position import (LearnableAPE, NoPE, PositionEncoding, QKTransform, RoPE2D, RotaryQK, SinCosAPE, apply_rope,
                       build_position_encoding)
from .sampling import (ConvPixelUnshuffleDown, DCDownsample, DCUpsample, InterpConvUp, PatchExpanding, PatchMerging,
                       StridedConvDown, build_sampler, channel_to_space_duplicate, space_to_channel_average)

from .patch_embed import ConvPatchEmbed, PixelShuffleHead, SeqConvPatchEmbed, SeqConvUpHead
from .window_attention import (WindowAttention, shifted_window_mask, window_and_shift, window_partition,
                               window_reverse)

__all__ = [
    'MultiHeadSelfAttention', 'DWConvFFN', 'FullConvFFN', 'PointwiseFFN', 'RMSNorm', 'RMSNorm2d', 'GroupNorm',
    'LayerNorm', 'LayerNorm2d', 'build_act', 'build_norm', 'gn_groups', 'LearnableAPE', 'NoPE', 'PositionEncoding',
    'QKTransform', 'RotaryQK', 'RoPE2D', 'SinCosAPE', 'apply_rope', 'build_position_encoding', 'ConvPixelUnshuffleDown',
    'DCDownsample', 'DCUpsample', 'InterpConvUp', 'StridedConvDown', 'build_sampler', 'channel_to_space_duplicate',
    'space_to_channel_average'
]
__all__ += [
    'ConvPatchEmbed', 'PatchExpanding', 'PatchMerging', 'PixelShuffleHead', 'SeqConvPatchEmbed', 'SeqConvUpHead',
    'WindowAttention', 'shifted_window_mask', 'window_and_shift', 'window_partition', 'window_reverse'
]
