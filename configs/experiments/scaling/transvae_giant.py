# Scaling (Fig. 5, §3.1 B): TransVAE-G f16d32 on the scaling recipe (GAN 0.05 + VF 0.1, 3 epochs).
_base_ = ['../../_base_/models/transvae-g_f16d32.py', '../../_base_/recipes/scaling_gan-vf_8xb32-3e_in1k.py']
# Activation-checkpointed (`arch.with_cp`) like L and H, it still needs 75.1 GiB per GPU at 32 images per GPU on 8 GPUs
# (plan_run.py, bf16 DDP; FSDP refuses a step with a discriminator update): run it on 32 GPUs at 8 per GPU
# (--cfg-options train_dataloader.batch_size=8; the global batch stays 256), 56.7 GiB planned.
model = dict(**_base_.recipe_model, arch=dict(with_cp=True))
