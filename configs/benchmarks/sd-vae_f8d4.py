# SD-VAE f8d4 (SD 1.x/2.x), native CNN-VAE. Weights: diffusers_to_transvae.py VAE_DIR OUT; CKPT = OUT/model.safetensors
#   python tools/model_converters/diffusers_to_transvae.py <stable-diffusion-v1-5>/vae checkpoints/sd-vae
#   python tools/test.py configs/benchmarks/sd-vae_f8d4.py checkpoints/sd-vae/model.safetensors
# The converter writes a transvae package (weights + scaling_factor 0.18215 as latent_mean / latent_std); its
# model.safetensors is the checkpoint for tools/test.py, tools/extract_latents.py and the DiT stage, and exact tiling
# (--tile) works as for every CNN-VAE. E.g. the VAE of stable-diffusion-v1-5 (its vae/ folder) or stabilityai/sd-vae-ft-mse.
_base_ = ['../_base_/models/sd-vae_f8d4.py', './_base_/pretrained_eval.py']
