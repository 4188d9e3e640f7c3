# LightningDiT optimisation (PAPER.md §5.4): AdamW lr 2e-4 constant, betas (0.9, 0.95), wd 0, no clipping, bf16
# autocast, 200k iterations (Fig. 6 a / b; panel c sets max_iters=100000).
optim_wrapper = dict(
    type='SafeAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.95), weight_decay=0.0))
param_scheduler = []
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200000)
