from .attention import Attention, MultiHeadSelfAttention
from .ffn import FFN, DWConvFFN, FullConvFFN, PointwiseFFN, SwiGLUFFN
from .norm import Norm, RMSNorm, RMSNorm2d, GroupNorm, LayerNorm, LayerNorm2d, build_act, build_norm, gn_groups
from .position import (LearnableAPE, NoPE, PositionEncoding, QKTransform, RoPE2D, RotaryQK, SinCosAPE, apply_rope,
                       build_position_encoding)
from .sampling import (ConvPixelUnshuffleDown, DCDownsample, DCUpsample, Downsampler, InterpConvUp, PatchExpanding,
                       PatchMerging, Sampler, StridedConvDown, Upsampler, build_sampler, channel_to_space_duplicate,
                       space_to_channel_average)

from .patch_embed import ConvPatchEmbed, OutputHead, PatchEmbed, PixelShuffleHead, SeqConvPatchEmbed, SeqConvUpHead
from .window_attention import (WindowAttention, shifted_window_mask, window_and_shift, window_partition,
                               window_reverse)

# the slot base classes (DESIGN.md §3): a variant derives from one of them
__all__ = ['Attention', 'FFN', 'Norm', 'PositionEncoding', 'Sampler', 'Downsampler', 'Upsampler', 'PatchEmbed',
           'OutputHead']
__all__ += [
    'MultiHeadSelfAttention', 'DWConvFFN', 'FullConvFFN', 'PointwiseFFN', 'SwiGLUFFN', 'RMSNorm', 'RMSNorm2d',
    'GroupNorm', 'LayerNorm', 'LayerNorm2d', 'build_act', 'build_norm', 'gn_groups', 'LearnableAPE', 'NoPE',
    'QKTransform', 'RotaryQK', 'RoPE2D', 'SinCosAPE', 'apply_rope', 'build_position_encoding', 'ConvPixelUnshuffleDown',
    'DCDownsample', 'DCUpsample', 'InterpConvUp', 'StridedConvDown', 'build_sampler', 'channel_to_space_duplicate',
    'space_to_channel_average'
]
__all__ += [
    'ConvPatchEmbed', 'PatchExpanding', 'PatchMerging', 'PixelShuffleHead', 'SeqConvPatchEmbed', 'SeqConvUpHead',
    'WindowAttention', 'shifted_window_mask', 'window_and_shift', 'window_partition', 'window_reverse'
]
