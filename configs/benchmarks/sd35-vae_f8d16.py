# SD3.5-VAE (f8d16, 84M) through the DiffusersAutoencoderKL adapter: evaluation only, no checkpoint argument needed
# (the adapter loads its own weights). Put the diffusers-format VAE folder (config.json +
# diffusion_pytorch_model.safetensors, the `vae/` sub-folder of stabilityai/stable-diffusion-3.5-large) at
# checkpoints/sd35-vae, or override: --cfg-options model.pretrained_path=/path/to/vae
#   python tools/test.py --models configs/benchmarks/sd35-vae_f8d16.py configs/benchmarks/flux-vae_f8d16.py \
#       --datasets imagenet=data/imagenet/val --resolutions 256
_base_ = ['./_base_/adapter_eval.py']
model = dict(type='DiffusersAutoencoderKL', pretrained_path='checkpoints/sd35-vae')
