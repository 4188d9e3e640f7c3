# The CPU demo with LayerScaleTransVAEBlock (example_variant/layerscale_block.py, a subclass of the registered
# TransVAEBlock): the block's type changes, its attention / FFN / norm settings are kept (dicts merge).
# Run from the repo root: PYTHONPATH=projects/example_variant python tools/train.py THIS_CONFIG
_base_ = ['../../../configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py']
custom_imports = dict(imports=['example_variant.layerscale_block'], allow_failed_imports=False)
model = dict(arch=dict(block_cfg=dict(type='LayerScaleTransVAEBlock', layer_scale_init=1e-2)))
