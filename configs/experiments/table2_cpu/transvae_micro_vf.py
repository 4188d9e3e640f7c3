# Table 2 at CPU scale, "with VF": the main job's micro TransVAE f8d16 and recipe (1250 iterations of batch 16 at 64²
# crops of the bundled photos; configs/_base_/recipes/cpu_photos_1xb16-1250it.py) plus the paper's VF loss (weight 0.1,
# margins 0.5 / 0.25, adaptive weight vs the encoder's latent out-projection) against a PROXY foundation network:
# VGG16 relu5_3 (offline; no DINOv2 weights ship), at its native stride 16 (a 64² crop gives a 4 x 4 feature grid; the
# f8 latent's 8 x 8 grid is 2 x 2-pooled to it). Results with it are NOT the paper's DINOv2 alignment.
# Its pair: transvae_micro_wo_vf.py (the same file without `vf_loss`).
_base_ = ['../../_base_/models/transvae-micro_f8d16.py', '../../_base_/recipes/cpu_photos_1xb16-1250it.py']
model = dict(
    type='VAEGAN',
    vf_loss=dict(type='VFLoss', loss_weight=0.1, cos_margin=0.5, distmat_margin=0.25,
                 foundation_cfg=dict(type='VGG16Proxy', resize=None)))
