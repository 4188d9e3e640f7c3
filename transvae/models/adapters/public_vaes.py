"""The published configs of the public LDM-architecture VAEs that ``configs/benchmarks/`` rebuilds natively.

``DIFFUSERS_VAE_CONFIGS``: the ``vae/config.json`` of each model's diffusers repository (the keys that define the
model; ``_diffusers_version`` / ``_name_or_path`` left out). ``LDM_VAE_CONFIGS``: the original-format ``ddconfig`` +
``embed_dim`` (VA-VAE: ``tokenizer/configs/vavae_f16d32.yaml`` of hustvl/LightningDiT). Tests build diffusers'
``AutoencoderKL`` from these and compare it with the native model the conversion builds; the benchmark configs are
checked to equal that conversion.
"""
from __future__ import annotations

__all__ = ['DIFFUSERS_VAE_CONFIGS', 'LDM_VAE_CONFIGS']

_SD_LAYOUT = dict(
    _class_name='AutoencoderKL', act_fn='silu', block_out_channels=[128, 256, 512, 512],
    down_block_types=['DownEncoderBlock2D'] * 4, up_block_types=['UpDecoderBlock2D'] * 4, in_channels=3,
    out_channels=3, layers_per_block=2, norm_num_groups=32)

DIFFUSERS_VAE_CONFIGS: dict[str, dict] = {
    # runwayml/stable-diffusion-v1-5 (and SD 2.x, sample_size 768): scaling_factor is diffusers' default
    'sd': dict(_SD_LAYOUT, latent_channels=4, sample_size=512, scaling_factor=0.18215),
    # stabilityai/stable-diffusion-xl-base-1.0
    'sdxl': dict(_SD_LAYOUT, latent_channels=4, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
    # stabilityai/stable-diffusion-3.5-large
    'sd35': dict(_SD_LAYOUT, latent_channels=16, sample_size=1024, scaling_factor=1.5305, shift_factor=0.0609,
                 force_upcast=True, latents_mean=None, latents_std=None, mid_block_add_attention=True,
                 use_quant_conv=False, use_post_quant_conv=False),
    # black-forest-labs/FLUX.1-dev
    'flux': dict(_SD_LAYOUT, latent_channels=16, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
                 force_upcast=True, latents_mean=None, latents_std=None, mid_block_add_attention=True,
                 use_quant_conv=False, use_post_quant_conv=False),
}

LDM_VAE_CONFIGS: dict[str, dict] = {
    # VA-VAE f16d32 (hustvl/LightningDiT tokenizer/configs/vavae_f16d32.yaml: model.params)
    'vavae': dict(embed_dim=32, ddconfig=dict(double_z=True, z_channels=32, resolution=256, in_channels=3, out_ch=3,
                                              ch=128, ch_mult=[1, 1, 2, 2, 4], num_res_blocks=2,
                                              attn_resolutions=[16], dropout=0.0)),
}
