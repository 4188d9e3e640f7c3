# CPU-scale Fig. 5 (tools/reproduce/train_all_scales.sh --preset cpu): TransVAE-micro f8d16 at the micro widths
# [32, 32, 64, 128] on the main job's recipe (_base_/recipes/cpu_photos_1xb16-1250it.py: 1250 iterations of batch 16 at 64², held-out
# evaluation on the 8 val photos at 256²).
_base_ = ['../../_base_/models/transvae-micro_f8d16.py', '../../_base_/recipes/cpu_photos_1xb16-1250it.py']
