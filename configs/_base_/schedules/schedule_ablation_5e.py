# Paper §3.1 (A): ablation schedule, 5 ImageNet epochs (5 x 5005 iters at global batch 256) on the shared AdamW
# schedule (lr 1e-4, 1000-iteration warm-up; components/adamw_warmup.py). `--preset cpu`: a 200-iteration run.
_base_ = ['./components/adamw_warmup.py']
max_iters = 5 * 5005
train_cfg = dict(max_iters=max_iters, val_interval=5005)
