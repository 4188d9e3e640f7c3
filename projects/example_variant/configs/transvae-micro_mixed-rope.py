# The CPU demo with RoPE-Mixed (example_variant/mixed_rope.py: learnable 2D rotary frequencies) instead of axial
# RoPE in every Transformer stage (one key: model.arch.pe_cfg).
# Run from the repo root: PYTHONPATH=projects/example_variant python tools/train.py THIS_CONFIG
_base_ = ['../../../configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py']
custom_imports = dict(imports=['example_variant.mixed_rope'], allow_failed_imports=False)
model = dict(arch=dict(pe_cfg=dict(_delete_=True, type='MixedRoPE2D')))
