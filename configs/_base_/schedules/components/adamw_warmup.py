# What every paper schedule shares (PAPER.md §3.1, App. D): AdamW lr 1e-4, betas (0.5, 0.9), no weight decay, global
# batch 256 (1281167 / 256 ~= 5005 iterations per ImageNet epoch), constant lr after a 1000-iteration linear warm-up,
# iteration-based loops. SafeOptimWrapper skips non-finite steps and aborts after 5 in a row
# (transvae.engine.optimizers). A schedule inherits this file and sets its length (`max_iters`, `val_interval`).
iters_per_epoch = 5005

optim_wrapper = dict(
    type='SafeOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0),
    max_consecutive=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
]
train_cfg = dict(type='IterBasedTrainLoop')
# mmengine's loops that pass over a batch whose every image was unreadable (transvae.engine.loops)
val_cfg = dict(type='SkipEmptyValLoop')
test_cfg = dict(type='SkipEmptyTestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=256)

# `tools/train.py --preset cpu`: a 200-iteration run, lr 2e-4 after a 50-step warm-up (ENVIRONMENT.md §5). For a G/D
# schedule the partial `optim_wrapper` applies to both optimizers (VAEGANOptimWrapperConstructor).
schedule_presets = dict(
    cpu=dict(
        train_cfg=dict(max_iters=200, val_interval=100),
        optim_wrapper=dict(optimizer=dict(lr=2e-4)),
        param_scheduler=[dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50)],
        default_hooks=dict(checkpoint=dict(interval=100)),
    ))
