# FLUX-VAE (f8d16, 84M) through the DiffusersAutoencoderKL adapter: evaluation only, no checkpoint argument needed
# (the adapter loads its own weights). Put the diffusers-format VAE folder (config.json +
# diffusion_pytorch_model.safetensors, the `vae/` sub-folder of black-forest-labs/FLUX.1-dev) at
# checkpoints/flux-vae, or override: --cfg-options model.pretrained_path=/path/to/vae
_base_ = ['./_base_/adapter_eval.py']
model = dict(type='DiffusersAutoencoderKL', pretrained_path='checkpoints/flux-vae')
