# Stage ablation reference (Fig. 1b, 3c): CNN-VAE-T without any attention (the §3 CNN baseline, App. E).
_base_ = [
    '../_base_/models/cnn-vae-noattn-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_ablation_5e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
