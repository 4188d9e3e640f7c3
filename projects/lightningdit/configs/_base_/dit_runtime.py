# LightningDiT training recipe (PAPER.md §5.4): AdamW lr 2e-4 constant, betas (0.9, 0.95), wd 0, no clipping, bf16
# autocast, EMA 0.9999, checkpoints every 10k iterations (all kept, for the FID-vs-step curve), no validation loop
# (FID is computed afterwards by projects/lightningdit/tools/eval_fid.py / fid_vs_step.py).
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
    logger=dict(type='LoggerHook', interval=100))

# The ImageNet latents of tools/extract_latents.py --split train --flip (deterministic centre crops + stored h-flip).
train_dataloader = dict(
    batch_size=32,  # per GPU; 32 GPUs x 32 = the global batch 1024 of Fig. 6
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='ShardGroupedSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='LatentShardDataset', data_root='data/latents/REPLACE', use_flip=True, latent_norm=True,
                 latent_multiplier=1.0, num_classes=1000))

# `tools/train.py CONFIG --preset cpu`: the micro DiT on latents of the bundled photos (labels = source photo or
# video), written by projects/lightningdit/scripts/run_cpu_preset.sh with the micro TransVAE f8d16 at 128² centre
# crops (16x16x16 latents, 64 tokens at patch 2; labels = the 21 training sources, 32 class slots). fp32, batch 16,
# a fixed 600 iterations, a checkpoint and a sample grid every 100.
_cpu_root = 'work_dirs/lightningdit_cpu'
dit_presets = dict(
    cpu=dict(
        model=dict(latent_size=16, backbone=dict(arch='micro', in_channels=16, num_classes=32),
                   sampler=dict(num_steps=50)),
        train_dataloader=dict(
            batch_size=16,
            num_workers=0,
            persistent_workers=False,
            sampler=dict(repeat=20),  # 165 latents = 11 batches; mmengine sleeps 2 s per epoch
            dataset=dict(data_root=_cpu_root + '/latents', num_classes=32)),
        optim_wrapper=dict(
            _delete_=True,
            type='SafeOptimWrapper',
            optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.95), weight_decay=0.0)),
        train_cfg=dict(max_iters=600),
        custom_hooks=[
            dict(type='TransVAEEMAHook', momentum=1e-2, update_buffers=False, priority='ABOVE_NORMAL'),
            dict(type='LatentSampleGridHook', interval=100, num_images=16, nrow=8, num_steps=50,
                 vae_config='configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py',
                 vae_checkpoint=_cpu_root + '/vae.pth', latent_dir=_cpu_root + '/latents'),
        ],
        default_hooks=dict(checkpoint=dict(interval=100, max_keep_ckpts=-1), logger=dict(interval=25)),
    ))
