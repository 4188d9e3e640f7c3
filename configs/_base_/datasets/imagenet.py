# ImageNet-1k: data_root/train/<wnid>/*.JPEG and data_root/val/<wnid>/*.JPEG (class sub-folders; for a flat val
# folder pass ann_file=<list of "path label" lines> to the val dataset).
dataset_type = 'ImageFolderDataset'
data_root = 'data/imagenet'

# VA-VAE / LDM autoencoder training: resize the short side to the crop size, random crop, h-flip (not the
# classification RandomResizedCrop(scale=(0.08, 1)), which trains on up-scaled fragments).
train_pipeline = [
    dict(type='LoadImageRGB'),
    dict(type='ResizeShortSide', size=256, interpolation='bicubic'),
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

# skip_none_collate == pseudo_collate + carries skipped corrupt-file paths to SkippedImagesHook.
# The 'transvae.' prefix is required: Runner.build_dataloader looks collate functions up in mmengine's root
# FUNCTIONS registry, which ignores the default scope.
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='transvae.skip_none_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='transvae.skip_none_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='val', test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

_sample_root = 'data/sample_photos'
# `tools/train.py --preset cpu`: the bundled photo set, small crops, one worker. (`__` names are local to this file:
# mmengine drops them from the resolved config.)
__cpu_eval_loader = dict(
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
        ]))
dataset_presets = dict(
    cpu=dict(
        train_dataloader=dict(
            batch_size=8,
            num_workers=1,
            persistent_workers=False,
            dataset=dict(
                _delete_=True,
                type='SamplePhotosDataset',
                data_root=_sample_root,
                split='train',
                repeat=20,  # an epoch of 3300 crops, not 165 (mmengine pauses 2 s per epoch)
                pipeline=[
                    dict(type='LoadImageRGB'),
                    dict(type='RandomCrop', size=64),
                    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                    dict(type='PackVAEInputs'),
                ])),
        val_dataloader=__cpu_eval_loader,
        test_dataloader=__cpu_eval_loader,
    ))

# Validation during training: PSNR / SSIM / LPIPS-alex. Testing adds rFID (Inception pool3, 299² bilinear resize,
# posterior mean; protocol printed in the log and the report).
val_evaluator = [dict(type='PSNRMetric'), dict(type='SSIMMetric'), dict(type='LPIPSMetric', net='alex')]
test_evaluator = val_evaluator + [dict(type='FIDMetric')]
