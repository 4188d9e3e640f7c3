# Scaling (Fig. 5, §3.1 B): CNN-VAE-T f16d32 (with attention); 3 epochs, 10k warm-up, + GAN 0.05 + VF 0.1.
# Losses: L1 1.0 + LPIPS-vgg 1.0 + KL 1e-8 + VF 0.1 (DINOv2 ViT-L/14 from a local file, margins 0.5 / 0.25) + GAN 0.05
# (PatchGAN, hinge, adaptive weight), encoder and decoder trained jointly. The GAN start is not stated in the paper:
# disc_start=5001 follows VA-VAE's first run (PAPER.md §3.3).
_base_ = [
    '../../_base_/models/cnn-vae-t_f16d32.py', '../../_base_/datasets/imagenet.py',
    '../../_base_/schedules/schedule_scaling_3e.py', '../../_base_/default_runtime.py'
]
model = dict(
    type='VAEGAN',
    disc_start=5001,
    vf_loss=dict(
        type='VFLoss', loss_weight=0.1, cos_margin=0.5, distmat_margin=0.25,
        foundation_cfg=dict(type='DINOv2', weights_path='checkpoints/dinov2_vitl14.safetensors')),
    discriminator=dict(type='PatchGANDiscriminator', in_channels=3, ndf=64, n_layers=3),
    gan_loss=dict(type='HingeGANLoss', disc_weight=0.05))
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)

# `tools/train.py --preset cpu`: micro widths + LPIPS-alex (model base), the VGG16 relu5_3 proxy for DINOv2, a small
# discriminator starting at once (so the short CPU run exercises it). The schedule preset's lr applies to both
# optimizers (VAEGANOptimWrapperConstructor treats a partial `optimizer` as an override).
presets = dict(
    cpu=dict(
        model=dict(
            disc_start=0,
            vf_loss=dict(foundation_cfg=dict(_delete_=True, type='VGG16Proxy', resize=None)),
            discriminator=dict(ndf=16))))
