# TransVAE-L f8d16 (TransVAE-L†), stage 1 of the paper's final recipe (PAPER.md §3.1 C, App. D): encoder + decoder
# for 100 ImageNet epochs with L1 1.0 + LPIPS-vgg 1.0 + KL 1e-8 + VF 0.1 (DINOv2 ViT-L/14, margins 0.5 / 0.25, adaptive weight vs the
# encoder's latent out-projection); no GAN. Stage 2: transvae-l_f8d16_8xb32-10e-gan_in1k.py.
# f8 alignment (App. F, PAPER.md Q10): the projected 32x32 latent is 2x2 average-pooled to DINOv2's 16x16 grid
# (VFLoss pools the larger grid to the smaller). The paper trains f8d16 on ~25M in-house images; this recipe uses
# ImageNet-1k (PAPER.md Q15).
# 32 images per GPU need 151.8 GiB under bf16 DDP (plan_run.py): 8 per GPU x 4 accumulated micro-batches.
_base_ = ['../_base_/models/transvae-l_f8d16.py', '../_base_/recipes/stage1_vf_8xb8x4-100e_in1k.py']
model = _base_.recipe_model
