# TransVAE-micro f8d16: the CPU size (1.5M parameters), the same architecture as TransVAE-L f8d16 at tiny widths.
_base_ = ['./transvae-l_f8d16.py']
model = dict(
    arch=dict(widths=[32, 32, 64, 128], depths=[1, 1, 2, 2]),
    rec_loss=dict(perceptual_cfg=dict(net='alex')))
