# CNN-VAE-T f16d32 with a VA-VAE-style recipe: the LDM / SD-VAE / VA-VAE architecture (PAPER.md §2) trained as VA-VAE's
# first stage (`vavae/configs/f16d32_vfdinov2_long.yaml`, PAPER.md §3.4): 100 epochs, encoder + decoder + GAN jointly,
# L1 1.0 + LPIPS-vgg 1.0 + KL 1e-6 + VF 0.5 (DINOv2, margins 0 / 0) + GAN (disc_weight 0.5, from iteration 5001).
# VA-VAE then continues 2 x 15 epochs (VF 0.1, disc_start 1; then margins 0.5 / 0.25): override vf_loss / disc_start
# and load_from for those. For the paper's two-stage TransVAE recipe on this architecture, use the transvae-* configs
# with this model base.
_base_ = [
    '../_base_/models/cnn-vae-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_100e.py', '../_base_/default_runtime.py'
]
model = dict(
    type='VAEGAN',
    kl_loss=dict(type='KLLoss', loss_weight=1e-6),
    vf_loss=dict(
        type='VFLoss', loss_weight=0.5, cos_margin=0.0, distmat_margin=0.0,
        foundation_cfg=dict(type='DINOv2', weights_path='checkpoints/dinov2_vitl14.safetensors')),
    discriminator=dict(type='PatchGANDiscriminator', in_channels=3, ndf=64, n_layers=3),
    gan_loss=dict(type='HingeGANLoss', disc_weight=0.5),
    disc_start=5001)
optim_wrapper = dict(
    _delete_=True,
    constructor='VAEGANOptimWrapperConstructor',
    generator=dict(type='SafeOptimWrapper', max_consecutive=5,
                   optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)),
    discriminator=dict(type='SafeOptimWrapper', max_consecutive=5,
                       optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)))
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
# Optional EMA for evaluation: custom_hooks = [dict(type='EMAHook', momentum=1e-4)]

# `tools/train.py --preset cpu`: micro widths + LPIPS-alex (model base), VGG16 proxy, small discriminator (ndf 16),
# GAN from iteration 100 of the 200-iteration CPU schedule.
presets = dict(
    cpu=dict(
        model=dict(
            vf_loss=dict(foundation_cfg=dict(_delete_=True, type='VGG16Proxy', resize=None)),
            discriminator=dict(ndf=16),
            disc_start=100)))
