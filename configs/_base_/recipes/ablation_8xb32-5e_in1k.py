# The §3.1 (A) ablation setting for any architecture base: L1 + LPIPS + KL 1e-8 (the model base's objective), ImageNet
# at 256², 5 epochs at global batch 256 (schedule_ablation_5e.py). A leaf lists an architecture base and this file.
_base_ = ['../datasets/imagenet.py', '../schedules/schedule_ablation_5e.py', '../default_runtime.py']
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
