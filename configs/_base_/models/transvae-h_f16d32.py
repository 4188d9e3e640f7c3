# TransVAE-H f16d32 (PAPER.md Table 3: 633M + 658M = 1.3B; measured 628.3M + 646.7M).
_base_ = ['./transvae-t_f16d32.py']
model = dict(arch=dict(widths=[256, 256, 512, 1024, 2048], depths=[3, 3, 4, 6, 8]))
