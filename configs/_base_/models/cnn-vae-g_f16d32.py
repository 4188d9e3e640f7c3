# CNN-VAE-G f16d32 (PAPER.md §2: 1.0B + 1.5B = 2.5B; measured 1012.9M + 1485.2M = 2.50B).
# LDM architecture of cnn-vae-t with base channels 768 (attention at the 16x16 level + mid-block, kept for scaling).
_base_ = ['./cnn-vae-t_f16d32.py']
model = dict(arch=dict(base_channels=768))
