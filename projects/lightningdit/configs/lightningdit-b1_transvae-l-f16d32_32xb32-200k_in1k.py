# Fig. 6(b): LightningDiT-B/1 on f16d32 latents (16x16x32 -> 256 tokens at patch 1), 200k iterations at batch 1024
# (160 epochs). TransVAE-T: set data_root to its latents.
# Defaults: the latents of `tools/extract_latents.py configs/transvae/transvae-l_f16d32_8xb32-100e_in1k.py ... --out`
# and the final checkpoint of `tools/train.py` on that config (a missing file is refused with one line naming it;
# override with --cfg-options).
_base_ = [
    './_base_/models/lightningdit_flow.py', './_base_/datasets/latents_in1k.py',
    './_base_/schedules/adamw-2e-4_200k.py', './_base_/evaluation/generation_fid-10k.py',
    './_base_/default_runtime.py', './_base_/presets/cpu.py'
]

model = dict(latent_size=16, backbone=dict(arch='B/1', in_channels=32))

_latents = 'data/latents/transvae-l_f16d32_in1k_train256'
train_dataloader = dict(dataset=dict(data_root=_latents))
test_dataloader = dict(dataset=dict(latent_shape=(32, 16, 16)))
test_evaluator = dict(vae_config='configs/transvae/transvae-l_f16d32_8xb32-100e_in1k.py',
                      vae_checkpoint='work_dirs/transvae-l_f16d32_8xb32-100e_in1k/iter_1001000.pth',
                      latent_dir=_latents)  # its latents_stats.safetensors undo the normalisation
train_cfg = dict(max_iters=200000)
