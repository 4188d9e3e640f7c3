# Swin-VAE-T f16d32 (PAPER.md §2: 30M + 30M = 60M; measured 30.3M + 30.1M = 60.3M).
# Patch embed 2 (conv k2 s2 + LN), 4 Swin stages (window 8, shifted windows every other block, Swin-v1 relative
# position bias), PatchMerging between encoder stages, PatchExpanding between decoder stages, LN -> 1x1 conv ->
# PixelShuffle(2) -> Conv3x3 head. Head dim 32 as in Swin (96 channels are not divisible by 64); MLP ratio 4.
_base_ = ['./components/vae_objective.py']  # L1 + LPIPS + KL, data preprocessor
model = dict(
    arch=dict(
        widths=[96, 192, 384, 768],
        depths=[3, 3, 3, 3],
        latent_channels=32,
        patch_size=2,
        window_size=8,
        head_dim=32,
        block_cfg=dict(
            type='SwinBlock',
            attn_cfg=dict(type='WindowAttention', qk_norm_cfg=None, rel_pos_bias=True),
            ffn_cfg=dict(type='PointwiseFFN', ffn_ratio=4.0),
            norm_cfg=dict(type='LN')),
        pe_cfg=None),
    encoder=dict(type='SwinEncoder', patch_embed_cfg=dict(type='ConvPatchEmbed', norm_cfg=dict(type='LN2d')),
                 down_cfg=dict(type='PatchMerging')),
    decoder=dict(type='SwinDecoder', up_cfg=dict(type='PatchExpanding'), head_cfg=dict(type='PixelShuffleHead')))

# `tools/train.py --preset cpu`: micro widths, one block per stage (f kept at 16); LPIPS-alex from
# components/vae_objective.py.
model_presets = dict(
    cpu=dict(
        model=dict(
            arch=dict(widths=[16, 32, 64, 128], depths=[1, 1, 1, 1], head_dim=16))))
