# TransVAE-L f16d32 (PAPER.md Table 3: 266M + 279M = 545M; measured 263.0M + 273.2M).
_base_ = ['./transvae-t_f16d32.py']
model = dict(arch=dict(widths=[192, 192, 384, 768, 1536], depths=[3, 3, 3, 4, 6]))
