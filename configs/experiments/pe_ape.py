# PE ablation (Fig. 3b): learnable APE -- the ViT-VAE-T baseline itself (16x16 grid, interpolated elsewhere).
# Reference: ViT-VAE-T (Fig. 2b) on the §3.1 A ablation schedule (L1 + LPIPS + KL 1e-8, 5 epochs).
_base_ = [
    '../_base_/models/vit-vae-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_ablation_5e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
