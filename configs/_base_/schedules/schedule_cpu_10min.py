# CPU demo: train for 10 minutes of wall time (ENVIRONMENT.md §5: AdamW 2e-4 with a 50-step warm-up; stop on
# elapsed time, not steps; decay the lr over the last 20% of the budget). max_iters is only an upper bound.
optim_wrapper = dict(
    type='SafeOptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.5, 0.9), weight_decay=0.0),
    max_consecutive=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=100000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

custom_hooks = [
    dict(type='TimeBudgetHook', seconds=600, decay_fraction=0.2, min_lr_ratio=0.0),
    dict(type='ReconstructionGridHook', interval=500, at_iters=[0], num_images=4, max_side=128),
]

schedule_presets = dict(cpu=dict())  # already the CPU schedule
