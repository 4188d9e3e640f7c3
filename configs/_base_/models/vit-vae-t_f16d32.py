# ViT-VAE-T f16d32 (PAPER.md §2: 26M + 25M = 51M; measured 26.0M + 25.9M = 51.9M).
# Single stage at stride 16 (Fig. 2b): conv patch-embed -> ViT blocks -> LN -> Conv3x3 -> z; z -> Conv3x3 -> ViT
# blocks -> LN -> 1x1 conv to 3*16^2 -> PixelShuffle(16) -> Conv3x3. Learnable APE on the 16x16 training grid
# (bicubically interpolated on other grids). `model.arch` is shared by encoder and decoder.
_base_ = ['./components/vae_objective.py']  # L1 + LPIPS + KL, data preprocessor
model = dict(
    arch=dict(
        embed_dims=512,
        depth=8,
        latent_channels=32,
        patch_size=16,
        head_dim=64,
        img_size=256,
        block_cfg=dict(
            type='ViTBlock',
            attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=None),
            ffn_cfg=dict(type='PointwiseFFN', ffn_ratio=4.0),
            norm_cfg=dict(type='LN')),
        pe_cfg=dict(type='LearnableAPE', grid_size=16)),
    encoder=dict(type='ViTEncoder', patch_embed_cfg=dict(type='ConvPatchEmbed')),
    decoder=dict(type='ViTDecoder', head_cfg=dict(type='PixelShuffleHead')))

# `tools/train.py --preset cpu`: micro width (2 heads of 64), 2 blocks, (f kept at 16); LPIPS-alex from components/vae_objective.py.
model_presets = dict(
    cpu=dict(
        model=dict(
            arch=dict(embed_dims=128, depth=2))))
