# The bundled photo set (real photos shipped in installed packages; see transvae/datasets/sample_photos.py).
# Metrics on it are "on the bundled photo set", not comparable to published ImageNet numbers.
dataset_type = 'SamplePhotosDataset'
data_root = 'data/sample_photos'  # assembled on first use by prepare_sample_photos()

train_pipeline = [
    dict(type='LoadImageRGB'),
    dict(type='RandomCrop', size=256),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackVAEInputs'),
]
test_pipeline = [
    dict(type='LoadImageRGB'),
    dict(type='ResizeShortSide', size=256, interpolation='bicubic'),
    dict(type='CenterCrop', size=256),
    dict(type='PackVAEInputs'),
]

# skip_none_collate == pseudo_collate (no stacking; the data preprocessor stacks) + it carries the paths of skipped
# corrupt files to SkippedImagesHook. Plain pseudo_collate fails on the per-sample `skipped` lists once a skip occurs.
# The 'transvae.' prefix is required: Runner.build_dataloader looks collate functions up in mmengine's root
# FUNCTIONS registry, which ignores the default scope.
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='transvae.skip_none_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', repeat=20,
                 pipeline=train_pipeline))  # repeat: see SamplePhotosDataset (2 s pause per epoch)
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='transvae.skip_none_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader

# Merged into the config by `tools/train.py --preset cpu` (lists replace, dicts merge). Base files use
# `<kind>_presets` (mmengine forbids duplicate keys among bases; see transvae.engine.config_surgery.preset_tables).
# (`__` names are local to this file: mmengine drops them from the resolved config.)
__cpu_eval_loader = dict(
    num_workers=1,
    dataset=dict(pipeline=[
        dict(type='LoadImageRGB'),
        dict(type='ResizeShortSide', size=128, interpolation='bicubic'),
        dict(type='CenterCrop', size=128),
        dict(type='PackVAEInputs'),
    ]))
dataset_presets = dict(
    cpu=dict(
        train_dataloader=dict(
            batch_size=8,
            num_workers=1,
            dataset=dict(pipeline=[
                dict(type='LoadImageRGB'),
                dict(type='RandomCrop', size=64),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='PackVAEInputs'),
            ])),
        val_dataloader=__cpu_eval_loader,
        test_dataloader=__cpu_eval_loader,
    ))

# PSNR on uint8-quantised images, SSIM (Gaussian 11 / 1.5), LPIPS-alex. No rFID here: 8 held-out photos are far
# too few for a Fréchet distance (tools/test.py adds it on ImageNet / COCO).
val_evaluator = [dict(type='PSNRMetric'), dict(type='SSIMMetric'), dict(type='LPIPSMetric', net='alex')]
test_evaluator = val_evaluator
