# TransVAE-L f16d32, stage 2 of the paper's final recipe (stage2_gan_8xb32-10e_in1k.py: frozen encoder,
# decoder + GAN 0.1 for 10 epochs), started from the last checkpoint of transvae-l_f16d32_8xb32-100e_in1k.py.
_base_ = ['../_base_/models/transvae-l_f16d32.py', '../_base_/recipes/stage2_gan_8xb32-10e_in1k.py']
model = _base_.recipe_model
# `--preset cpu` starts from the CPU stage-1 run (override: --cfg-options load_from=...)
load_from = 'work_dirs/transvae-l_f16d32_8xb32-100e_in1k/iter_1001000.pth'  # 100 x 5005 steps x accumulation 2
presets = dict(cpu=dict(load_from='work_dirs/transvae-l_f16d32_8xb32-100e_in1k_cpu/iter_200.pth'))
