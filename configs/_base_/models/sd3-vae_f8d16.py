# SD3-VAE f8d16 (Stable Diffusion 3 / 3.5 and FLUX.1: one architecture, 34M + 49M = 84M): the SD-VAE layout with 16
# latent channels and no quant_conv / post_quant_conv (diffusers' use_quant_conv=False). Equal to diffusers'
# AutoencoderKL with the published vae/config.json (tests/test_models/test_adapters/test_autoencoder_kl_conversion.py);
# weights: tools/model_converters/diffusers_to_transvae.py.
_base_ = ['./sd-vae_f8d4.py']
model = dict(
    arch=dict(latent_channels=16),
    encoder=dict(quant_conv=False),
    decoder=dict(post_quant_conv=False))
