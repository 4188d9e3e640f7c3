# COCO val2017 (5000 images, flat folder, no labels): a test-only reconstruction set.
dataset_type = 'ImageFolderDataset'
data_root = 'data/coco'

test_pipeline = [
    dict(type='LoadImageRGB'),
    dict(type='ResizeShortSide', size=256, interpolation='bicubic'),
    dict(type='CenterCrop', size=256),
    dict(type='PackVAEInputs'),
]

# The 'transvae.' prefix is required: Runner.build_dataloader looks collate functions up in mmengine's root
# FUNCTIONS registry, which ignores the default scope.
test_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='transvae.skip_none_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='val2017', layout='flat', test_mode=True,
                 pipeline=test_pipeline))

_sample_root = 'data/sample_photos'
# `tools/test.py --preset cpu`: the bundled val photos instead of COCO, 128 px centre crops.
dataset_presets = dict(
    cpu=dict(
        test_dataloader=dict(
            batch_size=4,
            num_workers=1,
            persistent_workers=False,
            dataset=dict(
                _delete_=True,
                type='SamplePhotosDataset',
                data_root=_sample_root,
                split='val',
                test_mode=True,
                pipeline=[
                    dict(type='LoadImageRGB'),
                    dict(type='ResizeShortSide', size=128, interpolation='bicubic'),
                    dict(type='CenterCrop', size=128),
                    dict(type='PackVAEInputs'),
                ])), ))

test_evaluator = [dict(type='PSNRMetric'), dict(type='SSIMMetric'), dict(type='LPIPSMetric', net='alex'),
                  dict(type='FIDMetric')]
