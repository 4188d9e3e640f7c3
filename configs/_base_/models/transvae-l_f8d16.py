# TransVAE-L f8d16 (PAPER.md Table 3: 353M + 366M = 719M; measured 350.3M + 360.5M).
_base_ = ['./transvae-t_f16d32.py']
model = dict(arch=dict(widths=[192, 384, 768, 1536], depths=[3, 3, 6, 8], latent_channels=16))
model_presets = dict(cpu=dict(model=dict(arch=dict(widths=[32, 32, 64, 128], depths=[1, 1, 2, 2]))))
