# SeqConv ablation (Fig. 3c): non-overlapping conv patch embed + pixel-shuffle head -- the reference point itself.
# Identical to pe_rope.py (ViT-VAE-T w/ RoPE: conv patch embed k = s = 16; 1x1 / PixelShuffle(16) / Conv3x3 head).
_base_ = ['./pe_rope.py']
