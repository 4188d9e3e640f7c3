# Stage 2 of the paper's final recipe (PAPER.md §3.1 C, App. D) for any architecture base: the encoder is frozen and
# the decoder is fine-tuned for 10 epochs with L1 + LPIPS-vgg + GAN 0.1 (PatchGAN, hinge, adaptive weight vs the
# decoder's last conv, active from iteration 0). KL and VF give no gradient once the encoder is frozen: loss_kl is
# reported (a constant) and the VF loss is skipped (VAEGAN docstring). Two optimizers (schedule_10e_gan.py).
# A leaf config names the stage-1 checkpoint (weights only: the iteration restarts at 0, so disc_start=0 is the first
# stage-2 step; the discriminator starts fresh):
#     _base_ = ['../_base_/models/<arch>.py', '../_base_/recipes/stage2_gan_8xb32-10e_in1k.py']
#     model = _base_.recipe_model
#     load_from = 'work_dirs/<stage-1 config>/iter_500500.pth'   (iter_1001000 / iter_2002000 for the L recipes that
#     accumulate gradients over 2 / 4 micro-batches: a runner iteration is one micro-batch)
#     presets = dict(cpu=dict(load_from='work_dirs/<stage-1 config>_cpu/iter_200.pth'))
_base_ = ['./components/patchgan.py', '../datasets/imagenet.py', '../schedules/schedule_10e_gan.py',
          '../default_runtime.py']
recipe_model = dict(freeze_encoder=True, disc_start=0, gan_loss=dict(disc_weight=0.1))
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256
# Optional EMA for evaluation: custom_hooks = [dict(type='TransVAEEMAHook', momentum=1e-4)]
