# Paper App. D, stage 1: 100 ImageNet epochs (100 x 5005 iters at global batch 256) on the shared AdamW schedule
# (lr 1e-4, 1000-iteration warm-up; components/adamw_warmup.py). Validation every 5 epochs.
_base_ = ['./components/adamw_warmup.py']
max_iters = 100 * 5005
train_cfg = dict(max_iters=max_iters, val_interval=5 * 5005)
