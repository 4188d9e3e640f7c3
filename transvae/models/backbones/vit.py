"""The single-stage ViT-VAE baseline (PAPER.md §2, Fig. 2b) and its macro-ablation variants (§1.5, §1.7, §1.8).

Encoder::

    PatchEmbed(3 -> D, stride p) -> [PE] -> depth x block -> LN -> Conv3x3(D -> 2d)

Decoder::

    Conv3x3(d -> D) -> [PE] -> depth x block -> LN -> Head(D -> 3, x p)

Slots (one config key each): ``patch_embed_cfg`` (``ConvPatchEmbed`` | ``SeqConvPatchEmbed``), ``head_cfg``
(``PixelShuffleHead`` | ``SeqConvUpHead``), ``pe_cfg`` (``LearnableAPE`` | ``RoPE2D`` | ``NoPE``), ``block_cfg``
(``ViTBlock`` | ``TransVAEBlock``, whose ``ffn_cfg`` / ``attn_cfg.qk_norm_cfg`` select the FFN and Q/K norm).
"""
from __future__ import annotations

import copy

from torch import Tensor, nn

from transvae.registry import MODELS

from ..blocks.stages import TransformerStage
from ..layers.norm import build_norm
from .base import DecoderBase, EncoderBase, InitCfg, Segment


def _pe_cfg(pe_cfg: dict | None, img_size: int, patch_size: int) -> dict:
    """Default position encoding: learnable APE on the ``img_size / patch_size`` training grid."""
    if pe_cfg is None:
        return dict(type='LearnableAPE', grid_size=img_size // patch_size)
    return copy.deepcopy(pe_cfg)


class _TokenNorm(nn.Module):
    """A token norm (``LN``) applied to the channels of a ``(B, C, H, W)`` map."""

    def __init__(self, cfg: dict | None, channels: int) -> None:
        super().__init__()
        self.norm = build_norm(cfg, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@MODELS.register_module()
class ViTEncoder(EncoderBase):
    """Single-stage ViT encoder at stride ``patch_size``.

    Args:
        embed_dims: width ``D`` (512 / 768 / 1024 / 1536 / 2048 for T / B / L / H / G).
        depth: number of blocks (8 / 12 / 24 / 24 / 24).
        latent_channels: ``d``.
        patch_size: stride ``p`` = the compression factor f (16).
        head_dim: attention head dim (64).
        block_cfg: Transformer block, shared with the decoder (``ViTBlock``: no Q/K norm, point-wise FFN ratio 4).
        pe_cfg: position encoding (``None``: ``LearnableAPE`` on a ``img_size / p`` grid, bicubically
            interpolated to other grids).
        patch_embed_cfg: patch embedding (``ConvPatchEmbed`` or ``SeqConvPatchEmbed``).
        norm_out_cfg: token norm before the latent projection.
        img_size: training image size (only for the APE grid).
        in_channels: image channels.
        double_z: output mean and log-variance (``2d`` channels).
        with_cp: gradient checkpointing.
    """

    def __init__(self, embed_dims: int, depth: int, latent_channels: int, patch_size: int = 16, head_dim: int = 64,
                 block_cfg: dict | None = None, pe_cfg: dict | None = None, patch_embed_cfg: dict | None = None,
                 norm_out_cfg: dict | None = None, img_size: int = 256, in_channels: int = 3, double_z: bool = True,
                 with_cp: bool = False, init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims, self.depth = embed_dims, depth
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.downsample_factor = patch_size
        self.patch_embed = MODELS.build(copy.deepcopy(patch_embed_cfg or dict(type='ConvPatchEmbed')),
                                        default_args=dict(in_channels=in_channels, embed_dims=embed_dims,
                                                          patch_size=patch_size))
        self.stage = TransformerStage(embed_dims, depth, copy.deepcopy(block_cfg or dict(type='ViTBlock')),
                                      _pe_cfg(pe_cfg, img_size, patch_size), head_dim, with_cp=with_cp)
        self.norm_out = _TokenNorm(norm_out_cfg or dict(type='LN'), embed_dims)
        self.conv_out = nn.Conv2d(embed_dims, (2 if double_z else 1) * latent_channels, 3, padding=1)

    def segments(self) -> list[Segment]:
        """``patch_embed`` (``(B, 3, H, W)``, H and W multiples of p -> ``(B, D, H/p, W/p)``), ``stage``, then the
        head (token norm, latent conv) -> ``(B, 2d, H/p, W/p)``."""
        return [Segment.of('stem', self.patch_embed, resamples=True), Segment.of('stage', self.stage),
                Segment.of('head', self.norm_out, self.conv_out)]

    def get_last_layer(self) -> nn.Parameter:
        return self.conv_out.weight


@MODELS.register_module()
class ViTDecoder(DecoderBase):
    """Single-stage ViT decoder, mirror of :class:`ViTEncoder`.

    Args:
        embed_dims, depth, latent_channels, patch_size, head_dim, block_cfg, pe_cfg, norm_out_cfg, img_size,
            with_cp: as for the encoder.
        head_cfg: output head (``PixelShuffleHead`` or ``SeqConvUpHead``).
        out_channels: image channels.
    """

    def __init__(self, embed_dims: int, depth: int, latent_channels: int, patch_size: int = 16, head_dim: int = 64,
                 block_cfg: dict | None = None, pe_cfg: dict | None = None, head_cfg: dict | None = None,
                 norm_out_cfg: dict | None = None, img_size: int = 256, out_channels: int = 3,
                 with_cp: bool = False, init_cfg: InitCfg = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims, self.depth = embed_dims, depth
        self.latent_channels = latent_channels
        self.upsample_factor = patch_size
        self.conv_in = nn.Conv2d(latent_channels, embed_dims, 3, padding=1)
        self.stage = TransformerStage(embed_dims, depth, copy.deepcopy(block_cfg or dict(type='ViTBlock')),
                                      _pe_cfg(pe_cfg, img_size, patch_size), head_dim, with_cp=with_cp)
        self.norm_out = _TokenNorm(norm_out_cfg or dict(type='LN'), embed_dims)
        self.head = MODELS.build(copy.deepcopy(head_cfg or dict(type='PixelShuffleHead')),
                                 default_args=dict(in_channels=embed_dims, out_channels=out_channels,
                                                   patch_size=patch_size))

    def segments(self) -> list[Segment]:
        """``conv_in`` (``(B, d, h, w) -> (B, D, h, w)``), ``stage``, then the head (token norm, output head)
        -> ``(B, 3, p*h, p*w)``."""
        return [Segment.of('stem', self.conv_in), Segment.of('stage', self.stage),
                Segment.of('head', self.norm_out, self.head, resamples=True)]

    def get_last_layer(self) -> nn.Parameter:
        return self.head.last_layer


__all__ = ['ViTEncoder', 'ViTDecoder']
