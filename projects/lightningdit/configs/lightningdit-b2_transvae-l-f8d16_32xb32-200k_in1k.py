# Fig. 6(a): LightningDiT-B/2 on f8d16 latents (32x32x16 -> 256 tokens at patch 2), 200k iterations at batch 1024
# (160 epochs); FID-10K without CFG every 10k. For the FLUX / SD3.5 curves point data_root at their latents.
_base_ = ['./_base_/dit_runtime.py']

model = dict(
    type='LatentFlowModel',
    latent_size=32,
    backbone=dict(type='LightningDiT', arch='B/2', in_channels=16, num_classes=1000, class_dropout_prob=0.1),
    path=dict(type='LinearPath'),
    timesteps=dict(type='LogitNormalTimesteps', mean=0.0, std=1.0),
    loss=dict(type='VelocityLoss', cos_weight=1.0),
    sampler=dict(type='EulerODESampler', num_steps=250, shift=0.3),
    guidance=dict(type='ClassifierFreeGuidance', scale=1.0, interval_start=0.11))  # scale 1: no CFG (Fig. 6)

_latents = 'data/latents/transvae-l_f8d16_in1k_train256'
train_dataloader = dict(dataset=dict(data_root=_latents))
test_dataloader = dict(dataset=dict(latent_shape=(16, 32, 32)))
test_evaluator = dict(vae_config='configs/transvae/transvae-l_f8d16_8xb32-100e_in1k.py', latent_dir=_latents)
train_cfg = dict(max_iters=200000)
