# LightningDiT runtime (PAPER.md §5.4): the core runtime, the project's modules, EMA 0.9999, checkpoints every 10k
# iterations (all kept, for the FID-vs-step curve), no validation loop (FID is computed afterwards by the core
# tools/test.py on a checkpoint: evaluation/generation_fid-10k.py, and projects/lightningdit/tools/fid_vs_step.py for
# every checkpoint).
_base_ = ['../../../../configs/_base_/default_runtime.py']

custom_imports = dict(imports=['projects.lightningdit.lightningdit'], allow_failed_imports=False)

# momentum = 1 - decay. TransVAERunner requires TransVAEEMAHook (not EMAHook); the checkpoint's state_dict holds the EMA
# weights (what the FID tools load) and ema_state_dict the average for an exact resume.
custom_hooks = [dict(type='TransVAEEMAHook', momentum=1e-4, update_buffers=False, priority='ABOVE_NORMAL')]
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=-1, save_last=True),
    logger=dict(type='LoggerHook', interval=100),
    # the data's latent shape / labels must match model.latent_size, backbone.in_channels and num_classes: refused
    # before the first step or sample (a dict entry, so overriding custom_hooks cannot drop it)
    latent_check=dict(type='LatentDataCheckHook'))
