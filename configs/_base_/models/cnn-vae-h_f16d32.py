# CNN-VAE-H f16d32 (PAPER.md §2: 450M + 660M = 1.1B; measured 450.6M + 660.3M = 1.11B).
# LDM architecture of cnn-vae-t with base channels 512 (attention at the 16x16 level + mid-block, kept for scaling).
_base_ = ['./cnn-vae-t_f16d32.py']
model = dict(arch=dict(base_channels=512))
