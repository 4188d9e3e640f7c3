# PE reference: TransVAE-T with its 2D RoPE (the final model, RoPE stated explicitly) on the ablation schedule.
_base_ = [
    '../_base_/models/transvae-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_ablation_5e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
model = dict(arch=dict(pe_cfg=dict(_delete_=True, type='RoPE2D', theta=10000.0)))
