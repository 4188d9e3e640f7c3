# schedule_10e.py for a VAEGAN: the same AdamW settings for two optimizers (VAEGANOptimWrapperConstructor):
# `generator` = every trainable parameter except the discriminator's (frozen ones excluded), `discriminator`.
_base_ = ['./schedule_10e.py']
optim_wrapper = dict(_delete_=True, constructor='VAEGANOptimWrapperConstructor',
                     generator=_base_.optim_wrapper, discriminator=_base_.optim_wrapper)
# one DDP per trainable submodule (frozen foundation / LPIPS nets are not wrapped); tools/train.py sets device_ids=None
# on CPU
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
