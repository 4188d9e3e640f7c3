# CNN-VAE-micro f8d16: a plain convolutional VAE (LDM ResBlocks, no attention) of the micro TransVAE's size (1.0M vs
# 1.5M parameters, 0.49 vs 0.46 GMACs at 64²),
# the reference for the training-step FLOP efficiency in tools/analysis_tools/benchmark.py (--train-step).
_base_ = ['./cnn-vae-noattn-t_f16d32.py']
model = dict(
    # GroupNorm(8): LDM's 4-16 channels per group at these widths (32 groups at 32 channels would be InstanceNorm).
    arch=dict(base_channels=32, channel_mults=[1, 1, 2, 2], num_res_blocks=1, latent_channels=16,
              norm_cfg=dict(type='GN', num_groups=8)),
    rec_loss=dict(perceptual_cfg=dict(net='alex')))
