# TransVAE-T f16d32 (PAPER.md Table 3: 21M + 23M = 44M; measured 20.4M + 21.9M).
# `model.arch` is shared by encoder and decoder: one key (e.g. arch.block_cfg.ffn_cfg) changes both.
_base_ = ['./components/vae_objective.py']  # L1 + LPIPS + KL, data preprocessor
model = dict(
    arch=dict(
        widths=[128, 128, 256, 256, 512],
        depths=[3, 3, 3, 3, 3],
        latent_channels=32,
        num_cnn_stages=2,
        head_dim=64,
        block_cfg=dict(
            type='TransVAEBlock',
            attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=dict(type='RMSNorm')),
            ffn_cfg=dict(type='FullConvFFN', ffn_ratio=1.0),
            norm_cfg=dict(type='LN')),
        cnn_block_cfg=dict(type='ResBlock'),
        pe_cfg=dict(type='RoPE2D', theta=10000.0),
        latent_shortcut=True),
    encoder=dict(type='TransVAEEncoder', down_cfg=dict(type='DCDownsample')),
    decoder=dict(type='TransVAEDecoder', up_cfg=dict(type='DCUpsample')))

# `tools/train.py --preset cpu`: the micro widths (f kept); LPIPS-alex from components/vae_objective.py.
# GroupNorm(8) in the CNN stages and before the latent / image projections keeps the paper's 4-16 channels per group
# at a quarter of the width (32 groups at 32 channels would be InstanceNorm).
model_presets = dict(
    cpu=dict(
        model=dict(
            arch=dict(widths=[32, 32, 64, 64, 128], depths=[1, 1, 1, 1, 2],
                      cnn_block_cfg=dict(norm_cfg=dict(type='GN', num_groups=8)),
                      norm_out_cfg=dict(type='GN', num_groups=8)))))
