# CNN-VAE-T f16d32 with a VA-VAE-style recipe: the LDM / SD-VAE / VA-VAE architecture (PAPER.md §2) trained as VA-VAE's
# first stage (`vavae/configs/f16d32_vfdinov2_long.yaml`, PAPER.md §3.4): 100 epochs, encoder + decoder + GAN jointly,
# L1 1.0 + LPIPS-vgg 1.0 + KL 1e-6 + VF 0.5 (DINOv2, margins 0 / 0) + GAN (disc_weight 0.5, from iteration 5001).
# VA-VAE then continues 2 x 15 epochs (VF 0.1, disc_start 1; then margins 0.5 / 0.25): override vf_loss / disc_start
# and load_from for those. For the paper's two-stage TransVAE recipe on this architecture, use the recipes in
# configs/_base_/recipes/ with this model base.
_base_ = [
    '../_base_/models/cnn-vae-t_f16d32.py', '../_base_/recipes/components/patchgan.py',
    '../_base_/datasets/imagenet.py', '../_base_/schedules/schedule_100e.py', '../_base_/default_runtime.py'
]
model = dict(
    _base_.recipe_model,
    kl_loss=dict(type='KLLoss', loss_weight=1e-6),
    vf_loss=dict(_base_.recipe_model.vf_loss, loss_weight=0.5, cos_margin=0.0, distmat_margin=0.0),
    gan_loss=dict(type='HingeGANLoss', disc_weight=0.5),
    disc_start=5001)
optim_wrapper = dict(_delete_=True, constructor='VAEGANOptimWrapperConstructor',
                     generator=_base_.optim_wrapper, discriminator=_base_.optim_wrapper)
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
# Optional EMA for evaluation: custom_hooks = [dict(type='TransVAEEMAHook', momentum=1e-4)]

# `tools/train.py --preset cpu` (micro widths, LPIPS-alex, VGG16 proxy, ndf 16 from the bases): GAN from iteration 100
# of the 200-iteration CPU schedule.
presets = dict(cpu=dict(model=dict(disc_start=100)))
