# PE ablation (Fig. 3b): learnable APE -- the ViT-VAE-T baseline itself (16x16 grid, interpolated elsewhere).
# Reference: ViT-VAE-T (Fig. 2b) on the §3.1 A ablation schedule (L1 + LPIPS + KL 1e-8, 5 epochs).
_base_ = ['../_base_/models/vit-vae-t_f16d32.py', '../_base_/recipes/ablation_8xb32-5e_in1k.py']
