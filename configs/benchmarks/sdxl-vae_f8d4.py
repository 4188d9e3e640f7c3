# SDXL-VAE f8d4, native CNN-VAE. Weights: diffusers_to_transvae.py VAE_DIR OUT; CKPT = OUT/model.safetensors
#   python tools/model_converters/diffusers_to_transvae.py <stable-diffusion-xl-base-1.0>/vae checkpoints/sdxl-vae
#   python tools/test.py configs/benchmarks/sdxl-vae_f8d4.py checkpoints/sdxl-vae/model.safetensors
# The SD-VAE architecture with SDXL's weights (stabilityai/stable-diffusion-xl-base-1.0 vae/ or
# madebyollin/sdxl-vae-fp16-fix) and scaling_factor 0.13025, which the converter stores as latent_mean / latent_std.
_base_ = ['../_base_/models/sd-vae_f8d4.py', './_base_/pretrained_eval.py']
