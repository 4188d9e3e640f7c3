# Stage 1 of the paper's final recipe (stage1_vf_8xb32-100e_in1k.py) at 8 images per GPU with 4 accumulated
# micro-batches: the paper's global batch 256 (8 GPUs x 32) and schedule. What accumulation changes and what it keeps
# is written once, in stage1_vf_8xb16x2-100e_in1k.py (2 micro-batches of 16): here every count in runner iterations is
# multiplied by 4 (the last checkpoint is iter_2002000.pth), the VF adaptive weight sees micro-batches of 8 images,
# and the EMA hook's momentum would be 4e-4 to keep the per-step decay.
_base_ = ['./stage1_vf_8xb32-100e_in1k.py']
accumulative_counts = 4
train_dataloader = dict(batch_size=8)  # x 4 accumulated x 8 GPUs: global batch 256
optim_wrapper = dict(accumulative_counts=accumulative_counts)
train_cfg = dict(max_iters=100 * 5005 * accumulative_counts, val_interval=5 * 5005 * accumulative_counts)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000 * accumulative_counts),
]
default_hooks = dict(checkpoint=dict(interval=1000 * accumulative_counts))
