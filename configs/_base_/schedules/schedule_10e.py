# Paper App. D, stage 2 (decoder fine-tuning with GAN) and Fig. 4(c): 10 ImageNet epochs (10 x 5005 iters at global
# batch 256), constant lr 1e-4 after a 1000-iteration linear warm-up, AdamW betas (0.5, 0.9), no weight decay.
# A G/D model overrides `optim_wrapper` with one SafeOptimWrapper per optimizer.
iters_per_epoch = 5005
max_iters = 10 * iters_per_epoch

optim_wrapper = dict(
    type='SafeOptimWrapper',
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
