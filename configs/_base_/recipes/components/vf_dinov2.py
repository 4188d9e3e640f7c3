# The paper's VF loss (PAPER.md §3.1 C, App. D): weight 0.1, margins 0.5 / 0.25, DINOv2 ViT-L/14 features, adaptive
# weight vs the encoder's latent out-projection; trained by a VAEGAN. The weights are read from a local file (nothing
# downloads): export timm's `vit_large_patch14_dinov2.lvd142m` state dict to checkpoints/dinov2_vitl14.safetensors.
# `recipe_model` is merged into the architecture's `model` by the leaf config (`model = _base_.recipe_model`):
# mmengine forbids one key in two `_base_` files, so a recipe cannot name `model` itself.
recipe_model = dict(
    type='VAEGAN',
    vf_loss=dict(
        type='VFLoss', loss_weight=0.1, cos_margin=0.5, distmat_margin=0.25,
        foundation_cfg=dict(type='DINOv2', weights_path='checkpoints/dinov2_vitl14.safetensors')))

# `tools/train.py --preset cpu`: the labelled VGG16 relu5_3 proxy at its native stride 16 (no resize: its grid equals
# the f16 latent grid of the small crops; an f8 latent is 2x2-pooled to it as at paper scale).
presets = dict(
    cpu=dict(
        model=dict(
            vf_loss=dict(foundation_cfg=dict(_delete_=True, type='VGG16Proxy', resize=None)))))
