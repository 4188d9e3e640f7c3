# The §3.1 (B) scaling setting (Fig. 5) for any architecture base: 3 epochs with a 10k warm-up
# (schedule_scaling_3e.py), L1 1.0 + LPIPS-vgg 1.0 + KL 1e-8 + VF 0.1 (components/vf_dinov2.py) + GAN 0.05 (PatchGAN,
# hinge, adaptive weight; components/patchgan.py), encoder and decoder trained jointly. The GAN start is not stated
# in the paper: disc_start=5001 follows VA-VAE's first run (PAPER.md §3.3).
# A leaf config:  _base_ = ['../../_base_/models/<arch>.py', '../../_base_/recipes/scaling_gan-vf_8xb32-3e_in1k.py']
#                 model = _base_.recipe_model
_base_ = ['./components/patchgan.py', '../datasets/imagenet.py', '../schedules/schedule_scaling_3e.py',
          '../default_runtime.py']
recipe_model = dict(disc_start=5001, gan_loss=dict(disc_weight=0.05))
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)

# `tools/train.py --preset cpu` (with the architecture's micro widths, the VGG16 proxy and the small discriminator of
# the components): the discriminator starts at once, so the short CPU run exercises it. The schedule preset's lr
# applies to both optimizers.
presets = dict(cpu=dict(model=dict(disc_start=0)))
