# TransVAE-L f8d16 (TransVAE-L†), stage 2 of the paper's final recipe (PAPER.md §3.1 C, App. D): the encoder is frozen and the
# decoder is fine-tuned for 10 epochs with L1 + LPIPS-vgg + GAN 0.1 (PatchGAN, hinge, adaptive weight vs the decoder's
# last conv, active from iteration 0). KL and VF give no gradient once the encoder is frozen: loss_kl is reported
# (a constant) and the VF loss is skipped (VAEGAN docstring). Two optimizers (VAEGANOptimWrapperConstructor):
# `generator` = every trainable parameter except the discriminator's (frozen ones excluded), `discriminator`.
_base_ = [
    '../_base_/models/transvae-l_f8d16.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_10e.py', '../_base_/default_runtime.py'
]
model = dict(
    type='VAEGAN',
    freeze_encoder=True,
    disc_start=0,
    vf_loss=dict(
        type='VFLoss', loss_weight=0.1, cos_margin=0.5, distmat_margin=0.25,
        foundation_cfg=dict(type='DINOv2', weights_path='checkpoints/dinov2_vitl14.safetensors')),
    discriminator=dict(type='PatchGANDiscriminator', in_channels=3, ndf=64, n_layers=3),
    gan_loss=dict(type='HingeGANLoss', disc_weight=0.1))
optim_wrapper = dict(
    _delete_=True,
    constructor='VAEGANOptimWrapperConstructor',
    generator=dict(type='SafeOptimWrapper', max_consecutive=5,
                   optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)),
    discriminator=dict(type='SafeOptimWrapper', max_consecutive=5,
                       optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)))
# The last checkpoint of stage 1 (100 x 5005 iterations, saved by CheckpointHook(save_last=True)). Weights only:
# the iteration restarts at 0 (so disc_start=0 is the first stage-2 step); the discriminator starts fresh.
load_from = 'work_dirs/transvae-l_f8d16_8xb32-100e_in1k/iter_500500.pth'
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
# Optional EMA for evaluation: custom_hooks = [dict(type='EMAHook', momentum=1e-4)]

# `tools/train.py --preset cpu`: micro widths + LPIPS-alex (model base), VGG16 proxy, a small discriminator (ndf 16),
# the CPU stage-1 work dir's last checkpoint (override with --cfg-options load_from=...).
presets = dict(
    cpu=dict(
        model=dict(
            vf_loss=dict(foundation_cfg=dict(_delete_=True, type='VGG16Proxy', resize=None)),
            discriminator=dict(ndf=16)),
        load_from='work_dirs/transvae-l_f8d16_8xb32-100e_in1k_cpu/iter_200.pth'))
