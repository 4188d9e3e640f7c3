# Paper §3.1 (A): ablation schedule. AdamW lr 1e-4, betas (0.5, 0.9), no weight decay, global batch 256,
# 5 ImageNet epochs counted in iterations (1281167 / 256 ~= 5005 iters per epoch), constant lr after a 1000-iter
# linear warm-up. `--preset cpu` (schedule_presets['cpu']) gives a 200-iteration CPU run.
iters_per_epoch = 5005
max_iters = 5 * iters_per_epoch

optim_wrapper = dict(
    type='SafeOptimWrapper',  # skips non-finite steps, aborts after 5 in a row (transvae.engine.optimizers)
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0),
    max_consecutive=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=iters_per_epoch)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=256)

schedule_presets = dict(
    cpu=dict(
        train_cfg=dict(max_iters=200, val_interval=100),
        optim_wrapper=dict(optimizer=dict(lr=2e-4)),
        param_scheduler=[dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50)],
        default_hooks=dict(checkpoint=dict(interval=100)),
    ))
