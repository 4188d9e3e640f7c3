# ViT-VAE-L f16d32 (PAPER.md §2: 303M + 302M = 605M; measured 304.0M + 303.7M = 607.6M).
_base_ = ['./vit-vae-t_f16d32.py']
model = dict(arch=dict(embed_dims=1024, depth=24))
