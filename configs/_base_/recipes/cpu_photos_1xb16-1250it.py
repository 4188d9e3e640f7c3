# The main CPU job's recipe (configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py = the micro TransVAE + this
# file): 1250 iterations of batch 16 at 64² crops of the bundled photos (about 10 minutes on 2 CPU cores; the 165
# training photos decoded once and kept in memory (~100 MB), loaded in the main process: with 2 cores a loader worker
# re-decoding PNGs every epoch took 0.2-0.4 s of each ~0.9 s iteration), AdamW 2e-4 with a 50-step warm-up and a
# linear decay over the last 20%, held-out evaluation on the 8 val photos at 256². The CPU-scale Fig. 5 family
# (configs/experiments/scaling_cpu/) and the Table 2 pair (configs/experiments/table2_cpu/) name a micro model and
# this recipe.
_base_ = [
    '../datasets/sample_photos.py',
    '../schedules/schedule_cpu_10min.py',
    '../default_runtime.py',
]

_train_pipeline = [
    dict(type='LoadImageRGB', cache_mb=512),
    dict(type='RandomCrop', size=64),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackVAEInputs'),
]
train_dataloader = dict(batch_size=16, num_workers=0, dataset=dict(pipeline=_train_pipeline))
val_dataloader = dict(num_workers=0)
test_dataloader = dict(num_workers=0)

default_hooks = dict(checkpoint=dict(interval=250, max_keep_ckpts=2), logger=dict(interval=25))
