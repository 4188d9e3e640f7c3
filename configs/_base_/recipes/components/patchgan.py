# vf_dinov2.py + the GAN term: PatchGAN discriminator (3 layers, ndf 64), hinge loss with an adaptive weight vs the
# decoder's last conv. A recipe sets `disc_weight` and `disc_start`; the schedule holds the two optimizers.
_base_ = ['./vf_dinov2.py']
recipe_model = dict(
    discriminator=dict(type='PatchGANDiscriminator', in_channels=3, ndf=64, n_layers=3),
    gan_loss=dict(type='HingeGANLoss'))

# `tools/train.py --preset cpu`: a small discriminator.
presets = dict(cpu=dict(model=dict(discriminator=dict(ndf=16))))
