# The class-conditional LightningDiT trained with rectified flow (PAPER.md §5.4, the reference hustvl/LightningDiT):
# linear path, logit-normal t, MSE + cosine velocity loss, label dropout 0.1, Euler with shift 0.3, and CFG scale 1
# (off, as in Fig. 6). A leaf config states the size: latent_size and backbone.arch / in_channels.
# Sampling follows the reference's protocol: its `num_sampling_steps: 250` is a 250-point time grid, i.e. 249 Euler
# steps (`num_steps=249` here; `num_grid_points=250` says the same in the reference's terms, give one of the two).
# The reference's CFG guides only the first 3 latent channels: `model.guidance.guided_channels=3` reproduces it (the
# default guides every channel; no effect at scale 1). `backbone.use_checkpoint=True` recomputes block activations
# in the backward pass (less memory, same gradients); `backbone.wo_shift` is the reference's adaLN without shift.
model = dict(
    type='LatentFlowModel',
    backbone=dict(type='LightningDiT', num_classes=1000, class_dropout_prob=0.1, wo_shift=False, use_checkpoint=False),
    path=dict(type='LinearPath'),
    timesteps=dict(type='LogitNormalTimesteps', mean=0.0, std=1.0),
    loss=dict(type='VelocityLoss', cos_weight=1.0),
    sampler=dict(type='EulerODESampler', num_steps=249, shift=0.3),
    guidance=dict(type='ClassifierFreeGuidance', scale=1.0, interval_start=0.11))  # scale 1: no CFG (Fig. 6)
