# Paper §3.1 (B): scaling schedule. The shared AdamW schedule (components/adamw_warmup.py) for 3 epochs (3 x 5005
# iters) with a 10k-iteration linear warm-up. The setting trains a GAN (weight 0.05) with the VF loss, so the
# schedule holds two optimizers (generator = every trainable parameter but the discriminator's) and one DDP wrapper
# per trainable submodule (frozen foundation / LPIPS nets are not wrapped).
_base_ = ['./components/adamw_warmup.py']
max_iters = 3 * 5005
train_cfg = dict(max_iters=max_iters, val_interval=5005)
param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10000)]
optim_wrapper = dict(_delete_=True, constructor='VAEGANOptimWrapperConstructor',
                     generator=_base_.optim_wrapper, discriminator=_base_.optim_wrapper)
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
