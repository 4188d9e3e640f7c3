# Runtime defaults shared by every transvae config.
default_scope = 'transvae'
runner_type = 'TransVAERunner'  # atomic checkpoints, non-finite-weight guard, RNG-exact resume

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/train.py switches to gloo itself when there is no CUDA
)

log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # TransVAERunner requires AtomicCheckpointHook (saves, then atomically repoints `last_checkpoint`, then prunes);
    # EMA: custom_hooks = [dict(type='TransVAEEMAHook', momentum=1e-4)] (TransVAERunner refuses mmengine's EMAHook)
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # counts unreadable (skipped) images into the log, summed over ranks; a dict entry so no config loses it
    skipped_images=dict(type='SkippedImagesHook'),
)

randomness = dict(seed=0)

vis_backends = [dict(type='LocalVisBackend')]
# no fixed `name`: each runner's visualizer is named after its (unique) experiment, so two runners in one process
# never write into each other's work dirs
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
