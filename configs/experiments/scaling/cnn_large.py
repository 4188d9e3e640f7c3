# Scaling (Fig. 5, §3.1 B): CNN-VAE-L f16d32 (with attention) on the scaling recipe (GAN 0.05 + VF 0.1, 3 epochs).
_base_ = ['../../_base_/models/cnn-vae-l_f16d32.py', '../../_base_/recipes/scaling_gan-vf_8xb32-3e_in1k.py']
model = _base_.recipe_model
