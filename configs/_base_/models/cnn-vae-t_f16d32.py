# CNN-VAE-T f16d32: the LDM / SD-VAE / VA-VAE architecture (PAPER.md §2: 29M + 41M = 70M; measured 28.4M + 41.4M),
# ch 128, mults [1, 1, 2, 2, 4], 2 ResBlocks per level (3 in the decoder), attention at the 16x16 level + mid-block.
_base_ = ['./components/vae_objective.py']  # L1 + LPIPS + KL, data preprocessor
model = dict(
    arch=dict(base_channels=128, channel_mults=[1, 1, 2, 2, 4], num_res_blocks=2, latent_channels=32,
              attn_levels=[4], mid_attn=True),
    encoder=dict(type='CNNEncoder', down_cfg=dict(type='StridedConvDown')),
    decoder=dict(type='CNNDecoder', up_cfg=dict(type='InterpConvUp')))

# `tools/train.py --preset cpu`: base channels 32, one ResBlock per level (f kept); LPIPS-alex from
# components/vae_objective.py. GroupNorm(8) at a quarter of the width keeps LDM's 4-16 channels per group (32 groups
# at 32 channels would be InstanceNorm: docs/RESULTS.md, "Why some claims disagree").
model_presets = dict(
    cpu=dict(
        model=dict(
            arch=dict(base_channels=32, channel_mults=[1, 1, 2, 2, 4], num_res_blocks=1,
                      norm_cfg=dict(type='GN', num_groups=8)))))
