# FLUX-VAE f8d16, native CNN-VAE. Weights: diffusers_to_transvae.py VAE_DIR OUT; CKPT = OUT/model.safetensors
#   python tools/model_converters/diffusers_to_transvae.py <FLUX.1-dev>/vae checkpoints/flux-vae
#   python tools/test.py configs/benchmarks/flux-vae_f8d16.py checkpoints/flux-vae/model.safetensors
# black-forest-labs/FLUX.1-dev vae/ (config.json + diffusion_pytorch_model.safetensors); the SD3.5-VAE architecture,
# whose shift_factor 0.1159 / scaling_factor 0.3611 the converter stores as latent_mean / latent_std.
_base_ = ['../_base_/models/sd3-vae_f8d16.py', './_base_/pretrained_eval.py']
