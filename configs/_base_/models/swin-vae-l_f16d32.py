# Swin-VAE-L f16d32 (PAPER.md §2: 375M + 375M = 750M; measured 376.7M + 376.1M = 752.8M).
_base_ = ['./swin-vae-t_f16d32.py']
model = dict(arch=dict(widths=[256, 512, 1024, 2048], depths=[3, 3, 4, 6]))
