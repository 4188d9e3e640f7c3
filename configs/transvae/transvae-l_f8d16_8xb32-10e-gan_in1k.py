# TransVAE-L f8d16 (TransVAE-L†), stage 2 of the paper's final recipe (stage2_gan_8xb32-10e_in1k.py: frozen encoder,
# decoder + GAN 0.1 for 10 epochs), started from the last checkpoint of transvae-l_f8d16_8xb32-100e_in1k.py.
# 32 images per GPU need 79.6 GiB under bf16 DDP (plan_run.py), more than an 80 GB GPU leaves: the decoder's stages
# are activation-checkpointed (`arch.with_cp`; the frozen encoder runs without a graph, so nothing of it is
# recomputed): 23.2 GiB planned, the paper's batch and schedule unchanged, at the cost of a second decoder forward.
# Same steps as without it: tests/test_models/test_autoencoders/test_vae_gan.py (the GAN adaptive weight included).
_base_ = ['../_base_/models/transvae-l_f8d16.py', '../_base_/recipes/stage2_gan_8xb32-10e_in1k.py']
model = dict(**_base_.recipe_model, arch=dict(with_cp=True))
# `--preset cpu` starts from the CPU stage-1 run (override: --cfg-options load_from=...)
load_from = 'work_dirs/transvae-l_f8d16_8xb32-100e_in1k/iter_2002000.pth'  # 100 x 5005 steps x accumulation 4
presets = dict(cpu=dict(load_from='work_dirs/transvae-l_f8d16_8xb32-100e_in1k_cpu/iter_200.pth'))
