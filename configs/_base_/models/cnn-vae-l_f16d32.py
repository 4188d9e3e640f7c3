# CNN-VAE-L f16d32 (PAPER.md §2: 332M + 371M = 703M; measured 253.7M + 371.6M = 625.3M).
# INCONSISTENT paper row: with ch 384 the encoder is ~254M, not 332M (the decoder matches).
# LDM architecture of cnn-vae-t with base channels 384 (attention at the 16x16 level + mid-block, kept for scaling).
_base_ = ['./cnn-vae-t_f16d32.py']
model = dict(arch=dict(base_channels=384))
