# FFN ablation (Fig. 4b, single stage): Conv-FFN with a dense 3x3 conv, ratio 1. Reference: ffn_single_standard.py.
_base_ = ['./ffn_single_standard.py']
model = dict(arch=dict(block_cfg=dict(ffn_cfg=dict(_delete_=True, type='FullConvFFN', ffn_ratio=1.0))))
