# TransVAE-T f16d32 "wo VF" (PAPER.md Table 2 (a) / (c)): the stage-1 recipe of transvae-t_f16d32_8xb32-100e_in1k.py
# with the VF loss removed and nothing else changed (L1 1.0 + LPIPS-vgg 1.0 + KL 1e-8, no GAN; the resolved pair
# differs only in `model.vf_loss`: tests/test_configs/test_table2_configs.py). The recipe's `cpu` preset would
# re-create a VF loss from its foundation_cfg entry, so the preset removes it too.
_base_ = ['../_base_/models/transvae-t_f16d32.py', '../_base_/recipes/stage1_vf_8xb32-100e_in1k.py']
model = _base_.recipe_model
model.vf_loss = None
presets = dict(cpu=dict(model=dict(vf_loss=None)))
