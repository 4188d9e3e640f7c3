# Stage ablation (Fig. 3c): multi-stage -- TransVAE-T layout (2 ResBlock + 3 Transformer stages), plain ViT block.
# "ViT w RoPE w Multi-Stage": ViT block (no Q/K norm, point-wise FFN x4), RoPE, no DC path (ConvPixelUnshuffle down,
# interpolate + conv up, no latent shortcut).
_base_ = ['../_base_/models/transvae-t_f16d32.py', '../_base_/recipes/ablation_8xb32-5e_in1k.py']
model = dict(
    arch=dict(
        block_cfg=dict(
            _delete_=True,
            type='ViTBlock',
            attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=None),
            ffn_cfg=dict(type='PointwiseFFN', ffn_ratio=4.0),
            norm_cfg=dict(type='LN')),
        pe_cfg=dict(_delete_=True, type='RoPE2D', theta=10000.0),
        latent_shortcut=False),
    encoder=dict(down_cfg=dict(_delete_=True, type='ConvPixelUnshuffleDown')),
    decoder=dict(up_cfg=dict(_delete_=True, type='InterpConvUp')))
