# TransVAE-G f16d32 (PAPER.md Table 3: 1.1B + 1.2B = 2.3B, but these depths give 1227.1M + 1256.1M = 2.48B: the paper's table is inconsistent (depth 9 in the last stage would give 2.3B)).
_base_ = ['./transvae-t_f16d32.py']
model = dict(arch=dict(widths=[320, 320, 640, 1280, 2560], depths=[3, 3, 4, 8, 10]))
