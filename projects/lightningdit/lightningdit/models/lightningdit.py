"""LightningDiT (Yao et al., 2025): a DiT with SwiGLU, RMSNorm, 2-D RoPE + sin-cos APE, and adaLN-Zero.

Sizes (``arch``), as in ``hustvl/LightningDiT`` ``models/lightningdit.py``:

========  =====  ======  =====  =====  ================================================================
arch      depth  width   heads  patch  parameters (this code, no APE buffer)
========  =====  ======  =====  =====  ================================================================
B/2       12     768     12     2      130.41 M (16 latent channels, 1000 classes)
B/1       12     768     12     1      130.36 M (32 latent channels, 1000 classes)
XL/1      28     1152    16     1      674.96 M (+0.29 M frozen APE = 675.26 M logged by the reference)
micro     4      128     2      2      1.29 M (CPU preset, 16 channels, 32 classes)
========  =====  ======  =====  =====  ================================================================
"""
from __future__ import annotations

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from transvae.models.layers import build_position_encoding
from transvae.registry import MODELS

from .dit_block import FinalLayer, LightningDiTBlock
from .embeddings import LabelEmbedder, TimestepEmbedder

#: name -> (depth, embed_dims, num_heads, patch_size)
ARCHS: dict[str, tuple[int, int, int, int]] = {
    'B/2': (12, 768, 12, 2),
    'B/1': (12, 768, 12, 1),
    'L/2': (24, 1024, 16, 2),
    'XL/2': (28, 1152, 16, 2),
    'XL/1': (28, 1152, 16, 1),
    'micro': (4, 128, 2, 2),
}


@MODELS.register_module()
class LightningDiT(BaseModule):
    """Class-conditional diffusion Transformer on latents: ``v = f(x_t, t, y)``.

    Args:
        arch: a name of :data:`ARCHS`, or ``None`` with ``depth``, ``embed_dims``, ``num_heads``, ``patch_size``.
        in_channels: latent channels ``C`` (16 for f8d16, 32 for f16d32).
        num_classes: number of classes ``K`` (the null class ``K`` is added when ``class_dropout_prob > 0``).
        class_dropout_prob: label dropout for classifier-free guidance (0.1).
        ffn_ratio: FFN ratio passed to the FFN slot (4; SwiGLU turns it into a hidden width of ``int(2/3 * 4C)``).
        norm_cfg: the block norms (``RMSNorm``).
        attn_cfg: the core attention (``MultiHeadSelfAttention`` without QK-norm, QKV bias).
        ffn_cfg: the core FFN slot (``SwiGLUFFN``).
        ape_cfg: absolute encoding added to the tokens (fixed ``SinCosAPE``; ``None`` for none).
        rope_cfg: rotary encoding given to attention (``RoPE2D`` with theta 10000; ``None`` for none).
        learn_sigma: predict a variance too (doubles the output; LightningDiT uses ``False``).
        wo_shift: adaLN without shift in every block (the reference's model option ``wo_shift``; ``False`` in every
            released LightningDiT): see :class:`LightningDiTBlock`.
        use_checkpoint: activation checkpointing of every block while training with gradients (the reference's
            ``use_checkpoint``): block activations are recomputed in the backward pass instead of stored; the
            outputs and gradients are the same.
        init_cfg: mmengine init config (the default initialisation below is always applied first).
    """

    def __init__(self, arch: str | None = 'B/1', in_channels: int = 32, num_classes: int = 1000,
                 class_dropout_prob: float = 0.1, depth: int | None = None, embed_dims: int | None = None,
                 num_heads: int | None = None, patch_size: int | None = None, ffn_ratio: float = 4.0,
                 norm_cfg: dict | None = None, attn_cfg: dict | None = None, ffn_cfg: dict | None = None,
                 ape_cfg: dict | None = dict(type='SinCosAPE'), rope_cfg: dict | None = dict(type='RoPE2D',
                                                                                             theta=10000.0),
                 learn_sigma: bool = False, wo_shift: bool = False, use_checkpoint: bool = False,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch is not None:
            if arch not in ARCHS:
                raise KeyError(f'unknown LightningDiT arch {arch!r}; choose from {sorted(ARCHS)} or pass '
                               'arch=None with depth / embed_dims / num_heads / patch_size')
            depth, embed_dims, num_heads, patch_size = ARCHS[arch]
        if None in (depth, embed_dims, num_heads, patch_size):
            raise ValueError('arch=None needs depth, embed_dims, num_heads and patch_size')
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by num_heads={num_heads}')
        self.arch = arch
        self.in_channels = in_channels
        self.out_channels = in_channels * (2 if learn_sigma else 1)
        self.learn_sigma = learn_sigma
        self.patch_size = patch_size
        self.embed_dims = embed_dims
        self.num_classes = num_classes
        self.use_checkpoint = bool(use_checkpoint)
        head_dim = embed_dims // num_heads
        norm_cfg = norm_cfg or dict(type='RMSNorm', eps=1e-6)
        attn_cfg = attn_cfg or dict(type='MultiHeadSelfAttention', qk_norm_cfg=None, qkv_bias=True)
        ffn_cfg = dict(ffn_cfg or dict(type='SwiGLUFFN'))
        ffn_cfg.setdefault('ffn_ratio', ffn_ratio)

        self.x_embedder = MODELS.build(dict(type='ConvPatchEmbed', in_channels=in_channels, embed_dims=embed_dims,
                                            patch_size=patch_size))
        self.t_embedder = TimestepEmbedder(embed_dims)
        self.y_embedder = LabelEmbedder(num_classes, embed_dims, class_dropout_prob)
        self.ape = build_position_encoding(ape_cfg, head_dim=head_dim, embed_dims=embed_dims)
        self.rope = build_position_encoding(rope_cfg, head_dim=head_dim, embed_dims=embed_dims)
        self.blocks = nn.ModuleList(
            LightningDiTBlock(embed_dims, head_dim, norm_cfg, attn_cfg, ffn_cfg, wo_shift) for _ in range(depth))
        self.final_layer = FinalLayer(embed_dims, patch_size, self.out_channels, norm_cfg)
        self.reset_parameters()

    # ---------------------------------------------------------------------------------------------------------- init
    def reset_parameters(self) -> None:
        """LightningDiT's initialisation: Xavier-uniform linears (patch embedding too), zero biases, N(0, 0.02) for
        the label table and the time MLP, zero adaLN modulations and output projection (adaLN-Zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            block.zero_init()
        self.final_layer.zero_init()

    # ------------------------------------------------------------------------------------------------------- forward
    def unpatchify(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``(B, h*w, p*p*C)`` -> ``(B, C, h*p, w*p)``."""
        b, p, (h, w) = x.shape[0], self.patch_size, hw
        x = x.reshape(b, h, w, p, p, self.out_channels)
        return torch.einsum('bhwpqc->bchpwq', x).reshape(b, self.out_channels, h * p, w * p)

    def forward(self, x: Tensor, t: Tensor, y: Tensor, force_drop: Tensor | None = None) -> Tensor:
        """Velocity prediction.

        Args:
            x: ``(B, C, H, W)`` noisy latents (``H``, ``W`` multiples of the patch size; any grid size).
            t: ``(B,)`` times in ``[0, 1]`` (0 = noise, 1 = data).
            y: ``(B,)`` int64 class labels in ``[0, K]`` (``K`` = the null class).
            force_drop: ``(B,)`` bool, replace these labels by the null class (CFG's unconditional half).

        Returns:
            ``(B, C_out, H, W)``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'expected (B, {self.in_channels}, H, W) latents, got {tuple(x.shape)}')
        if x.shape[-1] % self.patch_size or x.shape[-2] % self.patch_size:
            raise ValueError(f'latent size {tuple(x.shape[-2:])} is not a multiple of patch {self.patch_size}')
        tokens = self.x_embedder(x)  # (B, D, h, w)
        hw = (tokens.shape[2], tokens.shape[3])
        tokens = self.ape.embed_tokens(tokens.flatten(2).transpose(1, 2), hw)  # (B, N, D)
        rope = self.rope.qk_transform(hw)  # what attention applies to q / k
        c = self.t_embedder(t) + self.y_embedder(y, self.training, force_drop)  # (B, D)
        recompute = self.use_checkpoint and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if recompute:
                tokens = checkpoint(block, tokens, c, hw, rope, use_reentrant=False)
            else:
                tokens = block(tokens, c, hw, rope)
        out = self.unpatchify(self.final_layer(tokens, c), hw)
        if self.learn_sigma:
            out = out[:, :self.in_channels]
        return out
