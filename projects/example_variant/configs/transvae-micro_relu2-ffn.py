# The CPU demo (transvae-micro f8d16 on the bundled photos) with the squared-ReLU FFN of example_variant/relu2_ffn.py
# in every Transformer block of the encoder and decoder (one key: model.arch.block_cfg.ffn_cfg).
# Run from the repo root: PYTHONPATH=projects/example_variant python tools/train.py THIS_CONFIG
_base_ = ['../../../configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py']
custom_imports = dict(imports=['example_variant.relu2_ffn'], allow_failed_imports=False)
model = dict(arch=dict(block_cfg=dict(ffn_cfg=dict(_delete_=True, type='ReLU2FFN', ffn_ratio=2.0))))
