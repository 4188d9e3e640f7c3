# CNN-VAE-T f16d32 without any attention (the §3 Method-section baseline, PAPER.md §2 / App. E: no stage attention,
# no mid-block attention; measured 25.3M + 37.2M = 62.5M).
_base_ = ['./cnn-vae-t_f16d32.py']
model = dict(arch=dict(attn_levels=[], mid_attn=False))
