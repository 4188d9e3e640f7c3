# Paper App. D, stage 2 (decoder fine-tuning) and Fig. 4(c): 10 ImageNet epochs (10 x 5005 iters at global batch 256)
# on the shared AdamW schedule (lr 1e-4, 1000-iteration warm-up; components/adamw_warmup.py). Validation every epoch.
# schedule_10e_gan.py is the same schedule with one optimizer per G / D.
_base_ = ['./components/adamw_warmup.py']
max_iters = 10 * 5005
train_cfg = dict(max_iters=max_iters, val_interval=5005)
