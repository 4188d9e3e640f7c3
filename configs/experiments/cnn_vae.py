# Stage ablation reference (Fig. 1b, 3c): CNN-VAE-T without any attention (the §3 CNN baseline, App. E).
_base_ = ['../_base_/models/cnn-vae-noattn-t_f16d32.py', '../_base_/recipes/ablation_8xb32-5e_in1k.py']
