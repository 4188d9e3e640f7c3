# CPU demo schedule: a FIXED number of iterations, so the result is the same on every machine up to float rounding
# (a wall-time budget made it depend on the machine: 638 vs 1251 iterations on two 2-core VMs). demo_iters is what
# about 10 minutes of an unloaded 2-core x86_64 CPU train (README "Main job, measured"). AdamW 2e-4 after a 50-step
# warm-up (ENVIRONMENT.md §5), constant, then linear decay to 0 over the last 20% of the iterations.
# A wall-time budget is still available: `--cfg-options custom_hooks.0.seconds=600` (TimeBudgetHook; it ends the run
# at the budget or at demo_iters, whichever comes first, and keeps the logged ETA true).
demo_iters = 1250
_decay_begin = int(0.8 * demo_iters)

optim_wrapper = dict(
    type='SafeOptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.5, 0.9), weight_decay=0.0),
    max_consecutive=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=_decay_begin, end=demo_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=demo_iters, val_interval=500)
val_cfg = dict(type='SkipEmptyValLoop')  # passes over all-unreadable batches (transvae.engine.loops)
test_cfg = dict(type='SkipEmptyTestLoop')

custom_hooks = [
    dict(type='TimeBudgetHook', seconds=None, decay_fraction=0.2, min_lr_ratio=0.0),  # off: fixed iterations
    dict(type='ReconstructionGridHook', interval=500, at_iters=[0], num_images=4, max_side=128),
]

schedule_presets = dict(cpu=dict())  # already the CPU schedule
