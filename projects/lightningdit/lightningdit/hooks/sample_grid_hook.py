"""Save a grid of generated images every N iterations (fixed noise and labels, so grids are comparable)."""
from __future__ import annotations

import os
import os.path as osp

import torch
from mmengine.dist import master_only
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper

from transvae.registry import HOOKS, MODELS


@HOOKS.register_module()
class LatentSampleGridHook(Hook):
    """Sample ``num_images`` latents (labels ``i % num_classes``, seeds ``seed + i``), decode them with the frozen
    VAE of the latents and save ``work_dir/vis/samples_iter_XXXXXX.png`` (rank 0 only).

    The EMA weights are used when an ``EMAHook`` is registered (``use_ema``), else the training weights.

    Args:
        vae_config: config of the VAE whose latents the DiT learns.
        vae_checkpoint: its checkpoint (``None`` / ``'none'``: it loads its own weights).
        latent_dir: the latent folder (its statistics undo the normalisation: ``latents_stats.safetensors``, or
            ``latents_stats.pt`` of an official LightningDiT folder); its recorded VAE must be this one.
        interval: iterations between grids; a grid is also saved before training and after the last iteration.
        num_images: images in the grid.
        nrow: images per row.
        num_steps: Euler steps of the preview (fewer than the evaluation's 250).
        shift: time-grid shift of the preview sampler.
        seed: seed of the first image's noise.
        latent_multiplier: as in the dataset.
        use_ema: sample with the EMA weights when available.
    """

    priority = 'LOW'  # after EMAHook has updated the average

    def __init__(self, vae_config: str, vae_checkpoint: str | None, latent_dir: str | None, interval: int = 100,
                 num_images: int = 16, nrow: int = 8, num_steps: int = 50, shift: float = 0.3, seed: int = 0,
                 latent_multiplier: float = 1.0, use_ema: bool = True) -> None:
        self.vae_config, self.vae_checkpoint, self.latent_dir = vae_config, vae_checkpoint, latent_dir
        self.interval, self.num_images, self.nrow, self.seed = interval, num_images, nrow, seed
        self.latent_multiplier, self.use_ema = latent_multiplier, use_ema
        self.sampler = MODELS.build(dict(type='EulerODESampler', num_steps=num_steps, shift=shift))
        self._decoder = None
        self.saved: list[str] = []

    def _model(self, runner):
        if self.use_ema:
            for hook in runner.hooks:
                if isinstance(hook, EMAHook) and getattr(hook, 'ema_model', None) is not None:
                    return hook.ema_model.module
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    @master_only
    def save_grid(self, runner, step: int) -> str:
        from torchvision.utils import save_image

        from ..evaluation.decoder import FrozenLatentDecoder
        if self._decoder is None:
            self._decoder = FrozenLatentDecoder.from_config(self.vae_config, self.vae_checkpoint, self.latent_dir,
                                                            self.latent_multiplier)
        model = self._model(runner)
        device = next(model.parameters()).device
        k = model.backbone.num_classes
        labels = torch.arange(self.num_images, device=device) % k
        seeds = [self.seed + i for i in range(self.num_images)]
        rng = torch.random.get_rng_state()  # sampling must not move the training random stream
        try:
            z = model.sample(labels, seeds=seeds, sampler=self.sampler)
        finally:
            torch.random.set_rng_state(rng)
        imgs = self._decoder(z.float())
        path = osp.join(runner.work_dir, 'vis', f'samples_iter_{step:06d}.png')
        os.makedirs(osp.dirname(path), exist_ok=True)
        save_image(imgs, path, nrow=self.nrow, padding=2)
        runner.logger.info(f'sample grid saved to {path}')
        self.saved.append(path)
        return path

    def before_train(self, runner) -> None:
        if runner.iter == 0:
            self.save_grid(runner, 0)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self.save_grid(runner, runner.iter + 1)
