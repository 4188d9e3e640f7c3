# CNN-VAE-T f16d32: the LDM / SD-VAE / VA-VAE architecture (PAPER.md §2: 29M + 41M = 70M; measured 28.4M + 41.4M),
# ch 128, mults [1, 1, 2, 2, 4], 2 ResBlocks per level (3 in the decoder), attention at the 16x16 level + mid-block.
model = dict(
    type='VAE',
    arch=dict(base_channels=128, channel_mults=[1, 1, 2, 2, 4], num_res_blocks=2, latent_channels=32,
              attn_levels=[4], mid_attn=True),
    encoder=dict(type='CNNEncoder', down_cfg=dict(type='StridedConvDown')),
    decoder=dict(type='CNNDecoder', up_cfg=dict(type='InterpConvUp')),
    rec_loss=dict(type='ReconstructionNLL', pixel_weight=1.0, perceptual_cfg=dict(type='LPIPS', net='vgg'),
                  perceptual_weight=1.0),
    kl_loss=dict(type='KLLoss', loss_weight=1e-8),
    data_preprocessor=dict(type='VAEDataPreprocessor'))

model_presets = dict(
    cpu=dict(
        model=dict(
            arch=dict(base_channels=32, channel_mults=[1, 1, 2, 2, 4], num_res_blocks=1),
            rec_loss=dict(perceptual_cfg=dict(net='alex')))))
