# TransVAE-L f16d32, stage 1 of the paper's final recipe (PAPER.md §3.1 C, App. D): encoder + decoder for 100 ImageNet
# epochs with L1 1.0 + LPIPS-vgg 1.0 + KL 1e-8 + VF 0.1 (DINOv2 ViT-L/14, margins 0.5 / 0.25, adaptive weight vs the
# encoder's latent out-projection); no GAN. Stage 2: transvae-l_f16d32_8xb32-10e-gan_in1k.py.
# DINOv2 weights are read from a local file (nothing downloads): export timm's `vit_large_patch14_dinov2.lvd142m`
# state dict to checkpoints/dinov2_vitl14.safetensors. `--preset cpu` swaps in the labelled VGG16 relu5_3 proxy.
_base_ = [
    '../_base_/models/transvae-l_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_100e.py', '../_base_/default_runtime.py'
]
model = dict(
    type='VAEGAN',
    vf_loss=dict(
        type='VFLoss', loss_weight=0.1, cos_margin=0.5, distmat_margin=0.25,
        foundation_cfg=dict(type='DINOv2', weights_path='checkpoints/dinov2_vitl14.safetensors')))
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256
# one DDP per trainable submodule (frozen ones are not wrapped); tools/train.py sets device_ids=None on CPU
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
# Optional EMA for evaluation (not stated in the paper; PAPER.md §3.1 [G] "EMA 0.9999"): mmengine's EMAHook swaps
# the averaged weights in before val/test and stores them in the checkpoint:
# custom_hooks = [dict(type='EMAHook', momentum=1e-4)]

# `tools/train.py --preset cpu`: micro widths + LPIPS-alex (model base), VGG16 relu5_3 proxy at native stride 16
# (no resize: its grid equals the f16 latent grid of the small crops), bundled photos, short schedule.
presets = dict(
    cpu=dict(
        model=dict(
            vf_loss=dict(foundation_cfg=dict(_delete_=True, type='VGG16Proxy', resize=None)))))
