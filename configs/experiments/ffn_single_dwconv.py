# FFN ablation (Fig. 4b, single stage): Conv-FFN with a depthwise 3x3 conv, ratio 4. Reference: ffn_single_standard.py.
_base_ = ['./ffn_single_standard.py']
model = dict(arch=dict(block_cfg=dict(ffn_cfg=dict(_delete_=True, type='DWConvFFN', ffn_ratio=4.0))))
