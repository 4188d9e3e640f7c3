# CPU-scale Fig. 5 (tools/reproduce/train_all_scales.sh --preset cpu): TransVAE-micro f8d16 at twice the micro widths
# [64, 64, 128, 256] on the main job's recipe (_base_/recipes/cpu_photos_1xb16-1250it.py: 1250 iterations of batch 16 at 64², held-out
# evaluation on the 8 val photos at 256²).
# head_dim 64 as in the paper (2 and 4 heads); GroupNorm(8): 8-32 channels per group.
_base_ = ['../../_base_/models/transvae-micro_f8d16.py', '../../_base_/recipes/cpu_photos_1xb16-1250it.py']
model = dict(arch=dict(widths=[64, 64, 128, 256]))
