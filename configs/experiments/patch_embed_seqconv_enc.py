# SeqConv ablation (Fig. 3c): encoder patch embed -> SeqConv (4 x [Conv3x3 s2, GN, GELU]). Reference: patch_embed_conv.py.
_base_ = ['./patch_embed_conv.py']
model = dict(encoder=dict(patch_embed_cfg=dict(_delete_=True, type='SeqConvPatchEmbed')))
