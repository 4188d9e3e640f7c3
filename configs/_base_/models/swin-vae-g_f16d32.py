# Swin-VAE-G f16d32 (PAPER.md §2: 1.1B + 1.1B = 2.2B; measured 1136.8M + 1135.9M = 2.27B).
_base_ = ['./swin-vae-t_f16d32.py']
model = dict(arch=dict(widths=[384, 768, 1536, 3072], depths=[3, 4, 6, 8]))
