# CPU-scale Fig. 5 (tools/reproduce/train_all_scales.sh --preset cpu): TransVAE-micro f8d16 at half the micro widths
# [16, 16, 32, 64] on the main job's recipe (_base_/recipes/cpu_photos_1xb16-1250it.py: 1250 iterations of batch 16 at 64², held-out
# evaluation on the 8 val photos at 256²).
# GroupNorm(8) stays valid (2 channels per group at 16); head_dim 32: the first transformer stage has 32 channels.
_base_ = ['../../_base_/models/transvae-micro_f8d16.py', '../../_base_/recipes/cpu_photos_1xb16-1250it.py']
model = dict(arch=dict(widths=[16, 16, 32, 64], head_dim=32))
