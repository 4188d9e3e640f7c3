# ViT-VAE-H f16d32 (PAPER.md §2: 681M + 680M = 1.4B; measured 682.4M + 682.0M = 1.36B).
_base_ = ['./vit-vae-t_f16d32.py']
model = dict(arch=dict(embed_dims=1536, depth=24))
