# Swin-VAE-B f16d32 (PAPER.md §2: 64M + 93M = 157M; measured 53.6M + 53.3M = 106.9M).
# INCONSISTENT paper row: its params and memory duplicate the CNN-VAE-B row; these widths / depths give ~53M
# per side.
_base_ = ['./swin-vae-t_f16d32.py']
model = dict(arch=dict(widths=[128, 256, 512, 1024], depths=[3, 3, 3, 3]))
