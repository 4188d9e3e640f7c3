# CNN-VAE-B f16d32 (PAPER.md §2: 64M + 93M = 157M; measured 63.7M + 93.0M = 156.7M).
# LDM architecture of cnn-vae-t with base channels 192 (attention at the 16x16 level + mid-block, kept for scaling).
_base_ = ['./cnn-vae-t_f16d32.py']
model = dict(arch=dict(base_channels=192))
