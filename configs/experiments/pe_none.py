# PE ablation (Fig. 3b): ViT-VAE-T with no position encoding at all instead of the learnable APE. Reference: pe_ape.py.
_base_ = ['./pe_ape.py']
model = dict(arch=dict(pe_cfg=dict(_delete_=True, type='NoPE')))
