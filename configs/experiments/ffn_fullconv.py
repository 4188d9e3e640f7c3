# FFN ablation (Fig. 4a, multi-stage): Conv-FFN with a dense 3x3 conv in the hidden space, ratio 1. Reference: ffn_standard.py.
_base_ = ['./ffn_standard.py']
model = dict(arch=dict(block_cfg=dict(ffn_cfg=dict(_delete_=True, type='FullConvFFN', ffn_ratio=1.0))))
