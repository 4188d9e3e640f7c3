# Fig. 6(c): LightningDiT-XL/1 on f16d32 latents, 100k iterations at batch 1024 (80 epochs).
_base_ = ['./lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py']

model = dict(latent_size=16, backbone=dict(arch='XL/1', in_channels=32))
train_dataloader = dict(dataset=dict(data_root='data/latents/transvae-l_f16d32_in1k_train256'))
train_cfg = dict(max_iters=100000)
