# TransVAE-L f16d32 stage 1 (transvae-l_f16d32_8xb32-100e_in1k.py, unchanged recipe) trained with FSDP instead of
# DDP: parameters, gradients and AdamW state sharded over the 8 ranks, one FSDP unit per Transformer / ResNet block.
# Global batch 256 as the DDP recipe. Stage 2 (GAN) stays on MMSeparateDistributedDataParallel
# (transvae-l_f16d32_8xb32-10e-gan_in1k.py). CPU check: `tools/dist_train.sh THIS_CONFIG 2 --preset cpu`.
_base_ = ['./transvae-l_f16d32_8xb32-100e_in1k.py', '../_base_/strategies/fsdp.py']

# keys of default_runtime.py (see ../_base_/strategies/fsdp.py): only a leaf config can change them
runner_type = 'TransVAEFlexibleRunner'  # FlexibleRunner + RNG-exact resume
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
model_wrapper_cfg = None  # not read by FlexibleRunner: the strategy wraps the model
