# SeqConv ablation (Fig. 3c): encoder patch embed -> SeqConv (4 x [Conv3x3 s2, GN, GELU]). Reference: patch_embed_conv.py.
_base_ = ['./patch_embed_conv.py']
model = dict(encoder=dict(patch_embed_cfg=dict(_delete_=True, type='SeqConvPatchEmbed')))

# `--preset cpu` (embed dim 128, a quarter of ViT-VAE-T's): GroupNorm(8) keeps the paper's channels per group in
# the SeqConvPatchEmbed ramp (32 groups would make its 16- / 32-channel maps InstanceNorm).
presets = dict(cpu=dict(model=dict(encoder=dict(patch_embed_cfg=dict(norm_cfg=dict(type='GN', num_groups=8))))))
