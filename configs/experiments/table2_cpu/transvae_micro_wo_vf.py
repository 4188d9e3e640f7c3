# Table 2 at CPU scale, "wo VF": transvae_micro_vf.py without the VF loss (a VAEGAN without VF loss and
# discriminator trains as the main job's VAE): the main job's micro TransVAE f8d16 and recipe (1250 iterations of
# batch 16 at 64² crops of the bundled photos; ../scaling_cpu/_base_/main_job_recipe.py).
_base_ = ['../../_base_/models/transvae-micro_f8d16.py', '../scaling_cpu/_base_/main_job_recipe.py']
model = dict(type='VAEGAN')
