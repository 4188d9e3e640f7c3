# TransVAE-B f16d32 (PAPER.md Table 3: 67M + 73M = 140M; measured 65.9M + 70.4M).
_base_ = ['./transvae-t_f16d32.py']
model = dict(arch=dict(widths=[128, 128, 256, 512, 1024], depths=[3, 3, 3, 3, 3]))
