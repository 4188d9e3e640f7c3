# SeqConv ablation (Fig. 3c): decoder head -> SeqConv (4 x [x2 nearest, Conv3x3, GN, GELU] + Conv3x3). Reference: patch_embed_conv.py.
_base_ = ['./patch_embed_conv.py']
model = dict(decoder=dict(head_cfg=dict(_delete_=True, type='SeqConvUpHead')))

# `--preset cpu` (embed dim 128, a quarter of ViT-VAE-T's): GroupNorm(8) keeps the paper's channels per group in
# the SeqConvUpHead ramp (32 groups would make its 16- / 32-channel maps InstanceNorm).
presets = dict(cpu=dict(model=dict(decoder=dict(head_cfg=dict(norm_cfg=dict(type='GN', num_groups=8))))))
