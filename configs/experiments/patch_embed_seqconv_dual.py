# SeqConv ablation (Fig. 3c): SeqConv in the decoder too (Dual SeqConv). Reference: patch_embed_seqconv_enc.py.
_base_ = ['./patch_embed_seqconv_enc.py']
model = dict(decoder=dict(head_cfg=dict(_delete_=True, type='SeqConvUpHead')))
