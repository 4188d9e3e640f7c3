# The class-conditional LightningDiT trained with rectified flow (PAPER.md §5.4, the reference hustvl/LightningDiT):
# linear path, logit-normal t, MSE + cosine velocity loss, label dropout 0.1, Euler 250 steps with shift 0.3, and CFG
# scale 1 (off, as in Fig. 6). A leaf config states the size: latent_size and backbone.arch / in_channels.
model = dict(
    type='LatentFlowModel',
    backbone=dict(type='LightningDiT', num_classes=1000, class_dropout_prob=0.1),
    path=dict(type='LinearPath'),
    timesteps=dict(type='LogitNormalTimesteps', mean=0.0, std=1.0),
    loss=dict(type='VelocityLoss', cos_weight=1.0),
    sampler=dict(type='EulerODESampler', num_steps=250, shift=0.3),
    guidance=dict(type='ClassifierFreeGuidance', scale=1.0, interval_start=0.11))  # scale 1: no CFG (Fig. 6)
