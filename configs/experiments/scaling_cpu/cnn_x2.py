# CPU-scale Fig. 5 (tools/reproduce/train_all_scales.sh --preset cpu): CNN-VAE-micro f8d16 (LDM ResBlocks, one per
# level, no attention; configs/_base_/models/cnn-vae-micro_f8d16.py) at twice the micro width: base channels 64, mults
# [1, 1, 2, 2], on the main job's recipe (_base_/recipes/cpu_photos_1xb16-1250it.py: 1250 iterations of batch 16 at 64², held-out
# evaluation on the 8 val photos at 256²).
_base_ = ['../../_base_/models/cnn-vae-micro_f8d16.py', '../../_base_/recipes/cpu_photos_1xb16-1250it.py']
model = dict(arch=dict(base_channels=64))
