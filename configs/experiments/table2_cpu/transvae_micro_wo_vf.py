# Table 2 at CPU scale, "wo VF": transvae_micro_vf.py without the VF loss (a VAEGAN without VF loss and
# discriminator trains as the main job's VAE): the main job's micro TransVAE f8d16 and recipe (1250 iterations of
# batch 16 at 64² crops of the bundled photos; configs/_base_/recipes/cpu_photos_1xb16-1250it.py).
_base_ = ['../../_base_/models/transvae-micro_f8d16.py', '../../_base_/recipes/cpu_photos_1xb16-1250it.py']
model = dict(type='VAEGAN')
