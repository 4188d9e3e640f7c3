# SeqConv ablation (Fig. 3c): decoder head -> SeqConv (4 x [x2 nearest, Conv3x3, GN, GELU] + Conv3x3). Reference: patch_embed_conv.py.
_base_ = ['./patch_embed_conv.py']
model = dict(decoder=dict(head_cfg=dict(_delete_=True, type='SeqConvUpHead')))
