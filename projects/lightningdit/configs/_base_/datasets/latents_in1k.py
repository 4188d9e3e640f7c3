# ImageNet latents of `tools/extract_latents.py VAE_CONFIG VAE_CKPT --split train --flip --out DIR` (deterministic
# 256² centre crops + the stored h-flip, labels, channel statistics), read shard by shard and channel-normalised
# (LightningDiT latent_norm, multiplier 1.0). A leaf config states data_root: the --out folder of its VAE.
train_dataloader = dict(
    batch_size=32,  # per GPU; 32 GPUs x 32 = the global batch 1024 of Fig. 6
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='ShardGroupedSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='LatentShardDataset', use_flip=True, latent_norm=True, latent_multiplier=1.0, num_classes=1000))
