# Stage 1 of the paper's final recipe (PAPER.md §3.1 C, App. D) for any architecture base: encoder + decoder for 100
# ImageNet epochs with L1 1.0 + LPIPS-vgg 1.0 + KL 1e-8 + VF 0.1 (components/vf_dinov2.py); no GAN.
# A leaf config:  _base_ = ['../_base_/models/<arch>.py', '../_base_/recipes/stage1_vf_8xb32-100e_in1k.py']
#                 model = _base_.recipe_model
_base_ = ['./components/vf_dinov2.py', '../datasets/imagenet.py', '../schedules/schedule_100e.py',
          '../default_runtime.py']
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256
# one DDP per trainable submodule (frozen ones are not wrapped); tools/train.py sets device_ids=None on CPU
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
# Optional EMA for evaluation (not stated in the paper; PAPER.md §3.1 [G] "EMA 0.9999"): mmengine's EMAHook swaps
# the averaged weights in before val/test and stores them in the checkpoint:
# custom_hooks = [dict(type='TransVAEEMAHook', momentum=1e-4)]
