# ViT-VAE-G f16d32 (PAPER.md §2: 1.2B + 1.3B = 2.5B; measured 1211.9M + 1211.3M = 2.42B).
# The paper's decoder (1.3B) is not reproduced: encoder and decoder are symmetric here (3% off in total).
_base_ = ['./vit-vae-t_f16d32.py']
model = dict(arch=dict(embed_dims=2048, depth=24))
