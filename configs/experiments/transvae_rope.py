# PE reference: TransVAE-T with its 2D RoPE (the final model, RoPE stated explicitly) on the ablation schedule.
_base_ = ['../_base_/models/transvae-t_f16d32.py', '../_base_/recipes/ablation_8xb32-5e_in1k.py']
model = dict(arch=dict(pe_cfg=dict(_delete_=True, type='RoPE2D', theta=10000.0)))
