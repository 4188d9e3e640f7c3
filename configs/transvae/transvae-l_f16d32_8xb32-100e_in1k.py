# TransVAE-L f16d32, stage 1 of the paper's final recipe (PAPER.md §3.1 C, App. D): encoder + decoder for 100 ImageNet
# epochs with L1 1.0 + LPIPS-vgg 1.0 + KL 1e-8 + VF 0.1 (DINOv2 ViT-L/14, margins 0.5 / 0.25, adaptive weight vs the
# encoder's latent out-projection); no GAN. Stage 2: transvae-l_f16d32_8xb32-10e-gan_in1k.py.
# 32 images per GPU need 84.5 GiB under bf16 DDP (plan_run.py): 16 per GPU x 2 accumulated micro-batches.
_base_ = ['../_base_/models/transvae-l_f16d32.py', '../_base_/recipes/stage1_vf_8xb16x2-100e_in1k.py']
model = _base_.recipe_model
