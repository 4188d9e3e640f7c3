# What every architecture base shares: the VAE objective of PAPER.md §3.1 (L1 1.0 + LPIPS-vgg 1.0 + KL 1e-8; a recipe
# adds VF / GAN terms) and the data preprocessor (uint8 batch -> float [-1, 1], padding to the compression factor).
# An architecture base inherits this file and states only `arch`, `encoder` and `decoder`.
model = dict(
    type='VAE',
    rec_loss=dict(type='ReconstructionNLL', pixel_weight=1.0, perceptual_cfg=dict(type='LPIPS', net='vgg'),
                  perceptual_weight=1.0),
    kl_loss=dict(type='KLLoss', loss_weight=1e-8),
    data_preprocessor=dict(type='VAEDataPreprocessor'))

# `tools/train.py --preset cpu`: LPIPS-alex (LPIPS-vgg forward+backward is ~25x slower on a CPU, ENVIRONMENT.md §3);
# each architecture base adds its micro widths.
model_presets = dict(cpu=dict(model=dict(rec_loss=dict(perceptual_cfg=dict(net='alex')))))
