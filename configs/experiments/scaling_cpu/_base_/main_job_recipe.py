# The main job's recipe without its model (configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py): 1250
# iterations of batch 16 at 64² crops of the bundled photos (decoded once, kept in memory, loaded in the main
# process), AdamW 2e-4 with a 50-step warm-up and a linear decay over the last 20%, held-out evaluation on the 8 val
# photos at 256². The CPU-scale scaling family (Fig. 5) lists a micro model base and this file; the test
# projects/paper_studies/tests/test_scaling_cpu.py checks that the x1 TransVAE resolves to the main job config.
_base_ = [
    '../../../_base_/datasets/sample_photos.py',
    '../../../_base_/schedules/schedule_cpu_10min.py',
    '../../../_base_/default_runtime.py',
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
