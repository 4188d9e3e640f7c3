# Stage 1 of the paper's final recipe (stage1_vf_8xb32-100e_in1k.py) at 16 images per GPU with 2 accumulated
# micro-batches: the paper's global batch 256 (8 GPUs x 32) and schedule, for a model whose 32 images per GPU do not
# fit an 80 GB GPU (tools/analysis_tools/plan_run.py; README "Planning a GPU run").
#
# mmengine's `optim_wrapper.accumulative_counts`: each micro-batch's loss is divided by 2, the optimizer steps (and
# the gradients are zeroed) every 2 runner iterations; DDP still all-reduces every micro-batch. A runner iteration is
# one micro-batch, so all that is counted in runner iterations is multiplied by 2: the length, the validation
# interval, the LinearLR warm-up (ParamSchedulerHook steps it every runner iteration) and the checkpoint interval (a
# multiple of 2: no checkpoint inside an accumulation; the last is iter_1001000.pth). The result: 500500
# optimizer steps of 256 images (100 epochs), lr warm-up over the first 1000 of them, as the 8xb32 recipe.
# Not identical to it: the VF loss's adaptive weight is a gradient-norm ratio over each micro-batch (16 images, not
# 32), and the optional TransVAEEMAHook updates every runner iteration (momentum 1e-4 x 2 = 2e-4 keeps the
# per-step decay). tests/test_engine/test_grad_accumulation.py: accumulation gives the larger batch's step through
# SafeOptimWrapper / SafeAmpOptimWrapper.
_base_ = ['./stage1_vf_8xb32-100e_in1k.py']
accumulative_counts = 2
train_dataloader = dict(batch_size=16)  # x 2 accumulated x 8 GPUs: global batch 256
optim_wrapper = dict(accumulative_counts=accumulative_counts)
train_cfg = dict(max_iters=100 * 5005 * accumulative_counts, val_interval=5 * 5005 * accumulative_counts)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000 * accumulative_counts),
]
default_hooks = dict(checkpoint=dict(interval=1000 * accumulative_counts))
