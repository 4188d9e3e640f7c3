# Minor ablation (Fig. 4c): + Q/K RMSNorm on top of the DC path = the final TransVAE-T. Reference: minor_dc.py.
_base_ = ['./minor_dc.py']
model = dict(arch=dict(block_cfg=dict(attn_cfg=dict(qk_norm_cfg=dict(_delete_=True, type='RMSNorm')))))
