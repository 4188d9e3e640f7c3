# LightningDiT training recipe (PAPER.md §5.4): AdamW lr 2e-4 constant, betas (0.9, 0.95), wd 0, no clipping, bf16
# autocast, EMA 0.9999, checkpoints every 10k iterations (all kept, for the FID-vs-step curve), no validation loop
# (FID is computed afterwards by the core tools/test.py on a checkpoint: the test set below, and
# projects/lightningdit/tools/fid_vs_step.py for every checkpoint).
_base_ = ['../../../../configs/_base_/default_runtime.py']

custom_imports = dict(imports=['projects.lightningdit.lightningdit'], allow_failed_imports=False)

optim_wrapper = dict(
    type='SafeAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.95), weight_decay=0.0))
param_scheduler = []
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200000)

# momentum = 1 - decay. TransVAERunner requires TransVAEEMAHook (not EMAHook); the checkpoint's state_dict holds the EMA
# weights (what the FID tools load) and ema_state_dict the average for an exact resume.
custom_hooks = [dict(type='TransVAEEMAHook', momentum=1e-4, update_buffers=False, priority='ABOVE_NORMAL')]
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=-1, save_last=True),
    logger=dict(type='LoggerHook', interval=100),
    # the data's latent shape / labels must match model.latent_size, backbone.in_channels and num_classes: refused
    # before the first step or sample (a dict entry, so overriding custom_hooks cannot drop it)
    latent_check=dict(type='LatentDataCheckHook'))

# The ImageNet latents of tools/extract_latents.py --split train --flip (deterministic centre crops + stored h-flip).
train_dataloader = dict(
    batch_size=32,  # per GPU; 32 GPUs x 32 = the global batch 1024 of Fig. 6
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='ShardGroupedSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='LatentShardDataset', data_root='data/latents/REPLACE', use_flip=True, latent_norm=True,
                 latent_multiplier=1.0, num_classes=1000))

# Generation FID through the core test loop: `PYTHONPATH=. python tools/test.py CONFIG DIT_CKPT --report fid.md
# --out fid.json` (`tools/dist_test.sh` for several GPUs: the sample indices are split over the ranks). The test set is
# N class-balanced (label, seeded noise) pairs; the model's predict step integrates the noise to latents; the metric
# decodes them with the frozen VAE of the latents and computes FID against `reference`; the report is the registered
# GenerationFIDReport layout. The leaf configs set latent_shape, the VAE and the latents; every key here can be
# overridden with --cfg-options (e.g. test_evaluator.reference=REF.npz test_evaluator.grid_file=samples.png
# test_dataloader.dataset.num_samples=50000 model.sampler.num_steps=249).
test_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),  # no padded duplicates over the ranks
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ClassBalancedNoiseDataset', num_samples=10000, latent_shape=(16, 32, 32), num_classes=1000,
                 classes_from=None, seed=0))
test_evaluator = dict(
    type='GenerationFIDMetric',
    vae_config='configs/transvae/transvae-l_f8d16_8xb32-100e_in1k.py',
    vae_checkpoint='REPLACE_WITH_THE_VAE_CHECKPOINT',
    vae_preset=None,
    latent_dir='data/latents/REPLACE',  # its latents_stats.safetensors undo the normalisation
    latent_multiplier=1.0,
    reference='data/fid_refs/VIRTUAL_imagenet256_labeled.npz',  # ADM's ImageNet 256 reference batch (mu / sigma)
    reference_size=256,
    reference_cache_dir=None,
    grid_file=None,
    grid_images=64)
test_cfg = dict(type='TestLoop')
test_report = dict(type='GenerationFIDReport')

# `tools/train.py CONFIG --preset cpu` (projects/lightningdit/scripts/run_cpu_preset.sh runs it end to end): the micro
# DiT (patch 2) on the latents of the bundled photos from the main job's micro TransVAE f8d16 at 64² centre crops
# (8x8x16 latents, 16 tokens; labels = the 21 training sources, 1 to 125 photos each, drawn class-balanced). fp32,
# batch 32, AdamW 1e-3, EMA decay 0.995, a fixed 3000 iterations, a checkpoint and a sample grid every 500.
# `tools/test.py CONFIG CKPT --preset cpu`: FID of 200 class-balanced samples (50 Euler steps) against the 64² centre
# crops of the training photos (not comparable with Fig. 6), report + grid in work_dirs/lightningdit_cpu/.
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
