# Swin-VAE-H f16d32 (PAPER.md §2: 788M + 788M = 1.6B; measured 789.8M + 789.0M = 1.58B).
_base_ = ['./swin-vae-t_f16d32.py']
model = dict(arch=dict(widths=[320, 640, 1280, 2560], depths=[3, 4, 6, 8]))
