# Fig. 6(c): LightningDiT-XL/1 on f16d32 latents, 100k iterations at batch 1024 (80 epochs).
_base_ = ['./lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py']

model = dict(latent_size=16, backbone=dict(arch='XL/1', in_channels=32))
_latents = 'data/latents/transvae-l_f16d32_in1k_train256'
train_dataloader = dict(dataset=dict(data_root=_latents))
test_dataloader = dict(dataset=dict(latent_shape=(32, 16, 16)))
test_evaluator = dict(vae_config='configs/transvae/transvae-l_f16d32_8xb32-100e_in1k.py', latent_dir=_latents)
train_cfg = dict(max_iters=100000)
