# Shared evaluation-only settings of the public-VAE configs in this folder (test loop only: no train / val loop).
# ImageNet val at 256 (resize short side, bicubic, + centre crop), PSNR / SSIM / LPIPS-alex / rFID. For the paper's
# six settings use tools/analysis_tools/benchmark_reconstruction.sh (tools/test.py --models ... --datasets ...).
_base_ = ['../../_base_/default_runtime.py']

test_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='transvae.skip_none_collate'),
    dataset=dict(type='ImageFolderDataset', data_root='data/imagenet', data_prefix='val', layout='imagenet',
                 test_mode=True,
                 pipeline=[
                     dict(type='LoadImageRGB'),
                     dict(type='ResizeShortSide', size=256, interpolation='bicubic'),
                     dict(type='CenterCrop', size=256),
                     dict(type='PackVAEInputs'),
                 ]))
test_evaluator = [dict(type='PSNRMetric'), dict(type='SSIMMetric'), dict(type='LPIPSMetric', net='alex'),
                  dict(type='FIDMetric')]
test_cfg = dict(type='SkipEmptyTestLoop')  # passes over all-unreadable batches (transvae.engine.loops)

# `--preset cpu`: the bundled val photos at 128 px, one worker.
eval_presets = dict(
    cpu=dict(
        test_dataloader=dict(
            batch_size=2,
            num_workers=1,
            dataset=dict(
                _delete_=True,
                type='SamplePhotosDataset',
                data_root='data/sample_photos',
                split='val',
                test_mode=True,
                pipeline=[
                    dict(type='LoadImageRGB'),
                    dict(type='ResizeShortSide', size=128, interpolation='bicubic'),
                    dict(type='CenterCrop', size=128),
                    dict(type='PackVAEInputs'),
                ]))))
