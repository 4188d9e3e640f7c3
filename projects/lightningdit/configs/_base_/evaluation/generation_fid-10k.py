# Generation FID through the core test loop: `PYTHONPATH=. python tools/test.py CONFIG DIT_CKPT --report fid.md
# --out fid.json` (`tools/dist_test.sh` for several GPUs: the sample indices are split over the ranks). The test set is
# N class-balanced (label, seeded noise) pairs; the model's predict step integrates the noise to latents; the metric
# decodes them with the frozen VAE of the latents and computes FID against `reference`; the report is the registered
# GenerationFIDReport layout. A leaf config states the latent shape, the VAE (config and checkpoint) and the latents;
# every key here can be overridden with --cfg-options (e.g. test_evaluator.reference=REF.npz
# test_evaluator.grid_file=samples.png test_dataloader.dataset.num_samples=50000 model.sampler.num_steps=99).
test_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),  # no padded duplicates over the ranks
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ClassBalancedNoiseDataset', num_samples=10000, num_classes=1000, classes_from=None, seed=0))
test_evaluator = dict(
    type='GenerationFIDMetric',
    vae_preset=None,
    latent_multiplier=1.0,
    reference='data/fid_refs/VIRTUAL_imagenet256_labeled.npz',  # ADM's ImageNet 256 reference batch (mu / sigma)
    reference_size=256,
    reference_cache_dir=None,
    grid_file=None,
    grid_images=64)
test_cfg = dict(type='TestLoop')
test_report = dict(type='GenerationFIDReport')
