# SD-VAE f8d4 (Stable Diffusion 1.x / 2.x and SDXL: one architecture, 34M + 49M = 84M): LDM's autoencoder as our
# CNN-VAE, ch 128, mults [1, 2, 4, 4], 2 ResBlocks per level (3 in the decoder), mid-block attention only, GroupNorm(32),
# LDM's 1x1 quant_conv / post_quant_conv. Equal to diffusers' AutoencoderKL with the published vae/config.json
# (tests/test_models/test_adapters/test_autoencoder_kl_conversion.py); weights: tools/model_converters/diffusers_to_transvae.py.
_base_ = ['./components/vae_objective.py']  # L1 + LPIPS + KL, data preprocessor
model = dict(
    arch=dict(base_channels=128, channel_mults=[1, 2, 4, 4], num_res_blocks=2, latent_channels=4, attn_levels=[],
              mid_attn=True, norm_cfg=dict(type='GN', num_groups=32)),
    encoder=dict(type='CNNEncoder', down_cfg=dict(type='StridedConvDown'), in_channels=3, quant_conv=True),
    decoder=dict(type='CNNDecoder', up_cfg=dict(type='InterpConvUp'), out_channels=3, post_quant_conv=True))

# `--preset cpu`: base channels 32, one ResBlock per level (f kept); GroupNorm(8) keeps LDM's 4-16 channels per group
# (no pretrained weights fit these widths: a preset for tests and CPU training runs).
model_presets = dict(
    cpu=dict(
        model=dict(
            arch=dict(base_channels=32, num_res_blocks=1, norm_cfg=dict(type='GN', num_groups=8)))))
