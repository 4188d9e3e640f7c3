# Paper §3.1 (B): scaling schedule. As the ablation schedule (AdamW 1e-4, betas (0.5, 0.9), wd 0, batch 256) but
# 3 epochs (3 x 5005 iters) with a 10k-iteration linear warm-up. The setting trains a GAN (weight 0.05) with the VF
# loss, so the schedule holds two optimizers (generator = every trainable parameter but the discriminator's) and one
# DDP wrapper per trainable submodule (frozen foundation / LPIPS nets are not wrapped).
iters_per_epoch = 5005
max_iters = 3 * iters_per_epoch

optim_wrapper = dict(
    constructor='VAEGANOptimWrapperConstructor',
    generator=dict(type='SafeOptimWrapper', max_consecutive=5,
                   optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)),
    discriminator=dict(type='SafeOptimWrapper', max_consecutive=5,
                       optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)))
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10000),
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
