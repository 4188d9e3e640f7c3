# The main CPU job: the micro TransVAE f8d16 (1.5M parameters) trained for a fixed number of iterations (about 10
# minutes on a 2-core CPU; schedule_cpu_10min.py) on 64² crops of the bundled photos, evaluated on the held-out
# photos (256² center crops). `bash scripts/run_demo.sh` runs it.
_base_ = [
    '../_base_/models/transvae-micro_f8d16.py',
    '../_base_/datasets/sample_photos.py',
    '../_base_/schedules/schedule_cpu_10min.py',
    '../_base_/default_runtime.py',
]

# The 165 training photos are decoded once and kept in memory (~100 MB), and loaded in the main process: with 2 cores a loader
# worker re-decoding PNGs every epoch took 0.2-0.4 s of each ~0.9 s iteration.
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
