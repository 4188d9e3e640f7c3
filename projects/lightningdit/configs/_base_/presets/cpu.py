# `tools/train.py CONFIG --preset cpu` (projects/lightningdit/scripts/run_cpu_preset.sh runs it end to end): the micro
# DiT (patch 2) on the latents of the bundled photos from the main job's micro TransVAE f8d16 at 64² centre crops
# (8x8x16 latents, 16 tokens; labels = the 21 training sources, 1 to 125 photos each, drawn class-balanced). fp32,
# batch 32, AdamW 1e-3, EMA decay 0.995, a fixed 3000 iterations, a checkpoint and a sample grid every 500.
# `tools/test.py CONFIG CKPT --preset cpu`: FID of 200 class-balanced samples (50 Euler steps) against the 64² centre
# crops of the training photos (not comparable with Fig. 6), report + grid in work_dirs/lightningdit_cpu/.
# One table for the whole preset (model, data, schedule, hooks, evaluation): it is one experiment, read in one place.
_cpu_root = 'work_dirs/lightningdit_cpu'
_cpu_vae = 'configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py'
dit_presets = dict(
    cpu=dict(
        model=dict(latent_size=8, backbone=dict(arch='micro', in_channels=16, num_classes=21),
                   sampler=dict(num_steps=50)),
        train_dataloader=dict(
            batch_size=32,
            num_workers=0,
            persistent_workers=False,
            # mmengine sleeps 2 s at each epoch end: 400 batches per sampler epoch
            sampler=dict(_delete_=True, type='ClassBalancedSampler', num_samples=12800),
            dataset=dict(data_root=_cpu_root + '/latents', num_classes=21)),
        optim_wrapper=dict(
            _delete_=True,
            type='SafeOptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)),
        train_cfg=dict(max_iters=3000),
        custom_hooks=[
            dict(type='TransVAEEMAHook', momentum=5e-3, update_buffers=False, priority='ABOVE_NORMAL'),
            dict(type='LatentSampleGridHook', interval=500, num_images=24, nrow=8, num_steps=50, vae_config=_cpu_vae,
                 vae_checkpoint=_cpu_root + '/vae.pth', latent_dir=_cpu_root + '/latents'),
        ],
        default_hooks=dict(checkpoint=dict(interval=500, max_keep_ckpts=-1), logger=dict(interval=50)),
        test_dataloader=dict(
            batch_size=50,
            dataset=dict(num_samples=200, latent_shape=(16, 8, 8), classes_from=_cpu_root + '/latents')),
        test_evaluator=dict(vae_config=_cpu_vae, vae_checkpoint=_cpu_root + '/vae.pth',
                            latent_dir=_cpu_root + '/latents', reference='data/sample_photos/train',
                            reference_size=64, reference_cache_dir=_cpu_root,
                            grid_file=_cpu_root + '/fid_samples.png'),
    ))
