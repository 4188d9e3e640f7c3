# ViT-VAE-B f16d32 (PAPER.md §2: 86M + 85M = 171M; measured 86.3M + 86.1M = 172.4M).
_base_ = ['./vit-vae-t_f16d32.py']
model = dict(arch=dict(embed_dims=768, depth=12))
