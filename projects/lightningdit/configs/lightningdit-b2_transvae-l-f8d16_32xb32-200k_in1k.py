# Fig. 6(a): LightningDiT-B/2 on f8d16 latents (32x32x16 -> 256 tokens at patch 2), 200k iterations at batch 1024
# (160 epochs); FID-10K without CFG every 10k. For the FLUX / SD3.5 curves point data_root at their latents.
# Defaults: the latents of the project README's `tools/extract_latents.py ... --out` and the final checkpoint of
# `tools/train.py configs/transvae/transvae-l_f8d16_8xb32-100e_in1k.py` (a missing file is refused with one line
# naming it; override with --cfg-options).
_base_ = [
    './_base_/models/lightningdit_flow.py', './_base_/datasets/latents_in1k.py',
    './_base_/schedules/adamw-2e-4_200k.py', './_base_/evaluation/generation_fid-10k.py',
    './_base_/default_runtime.py', './_base_/presets/cpu.py'
]

model = dict(latent_size=32, backbone=dict(arch='B/2', in_channels=16))

_latents = 'data/latents/transvae-l_f8d16_in1k_train256'
train_dataloader = dict(dataset=dict(data_root=_latents))
test_dataloader = dict(dataset=dict(latent_shape=(16, 32, 32)))
test_evaluator = dict(vae_config='configs/transvae/transvae-l_f8d16_8xb32-100e_in1k.py',
                      vae_checkpoint='work_dirs/transvae-l_f8d16_8xb32-100e_in1k/iter_2002000.pth',
                      latent_dir=_latents)  # its latents_stats.safetensors undo the normalisation
train_cfg = dict(max_iters=200000)
