# TransVAE-micro f8d16: the CPU size (1.5M parameters), the same architecture as TransVAE-L f8d16 at tiny widths.
_base_ = ['./transvae-l_f8d16.py']
model = dict(
    # GroupNorm(8) in the CNN stages and the output norms: 4-16 channels per group, as the paper sizes have (32
    # groups at 32 channels would be InstanceNorm, which removes every channel's per-image mean: docs/RESULTS.md).
    arch=dict(widths=[32, 32, 64, 128], depths=[1, 1, 2, 2],
              cnn_block_cfg=dict(norm_cfg=dict(type='GN', num_groups=8)), norm_out_cfg=dict(type='GN', num_groups=8)),
    rec_loss=dict(perceptual_cfg=dict(net='alex')))
