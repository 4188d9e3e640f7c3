# Minor ablation (Fig. 4c): + per-head Q/K RMSNorm. Reference: minor_baseline.py.
_base_ = ['./minor_baseline.py']
model = dict(arch=dict(block_cfg=dict(attn_cfg=dict(qk_norm_cfg=dict(_delete_=True, type='RMSNorm')))))
