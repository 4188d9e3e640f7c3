# SD3.5-VAE f8d16, native CNN-VAE. Weights: diffusers_to_transvae.py VAE_DIR OUT; CKPT = OUT/model.safetensors
#   python tools/model_converters/diffusers_to_transvae.py <stable-diffusion-3.5-large>/vae checkpoints/sd35-vae
#   python tools/test.py configs/benchmarks/sd35-vae_f8d16.py checkpoints/sd35-vae/model.safetensors
# stabilityai/stable-diffusion-3.5-large vae/ (config.json + diffusion_pytorch_model.safetensors); the converter
# stores shift_factor 0.0609 / scaling_factor 1.5305 as latent_mean / latent_std. Side by side with FLUX:
#   python tools/test.py --models configs/benchmarks/sd35-vae_f8d16.py:checkpoints/sd35-vae/model.safetensors \
#       configs/benchmarks/flux-vae_f8d16.py:checkpoints/flux-vae/model.safetensors \
#       --datasets imagenet=data/imagenet/val --resolutions 256
_base_ = ['../_base_/models/sd3-vae_f8d16.py', './_base_/pretrained_eval.py']
