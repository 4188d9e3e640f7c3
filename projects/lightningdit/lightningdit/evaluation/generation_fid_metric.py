"""Generation FID (FID-10K of Fig. 6) as a registered metric of the core test loop (``tools/test.py``)."""
from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from transvae.evaluation.functional.fid import get_fid_inception
from transvae.registry import METRICS
from transvae.utils.errors import InputNotFoundError

from .decoder import FrozenLatentDecoder
from .generation_fid import fid_against, reference_statistics


@METRICS.register_module()
class GenerationFIDMetric(BaseMetric):
    """FID of generated latents (``pred_latent`` of the DiT's ``predict`` step) against reference statistics.

    ``process`` decodes each batch of latents with the frozen VAE of the latents (denormalised by the latent
    statistics), quantises the images to uint8 and keeps their 2048-d Inception pool3 features (so DDP gathers
    features, not images) plus the first ``grid_images`` images; ``compute_metrics`` (rank 0) orders the samples by
    index, computes the float64 Fréchet distance to the reference (an ADM ``.npz`` with ``mu`` / ``sigma``, or a
    folder of real images whose statistics are computed once and cached) and saves the sample grid.

    Keys: ``fid`` (float), ``num_samples``, ``reference`` (how the statistics were obtained), ``grid`` (PNG path or
    ``None``).

    Args:
        vae_config: config of the VAE that produced the latents (any registered VAE with ``decode``).
        vae_checkpoint: its checkpoint (``None`` / ``'none'``: a model that loads its own weights).
        latent_dir: the latent folder whose statistics the DiT was trained with (``latents_stats.safetensors``, or
            ``latents_stats.pt`` of an official LightningDiT folder; ``None``: the latents were not normalised);
            latents whose recorded VAE is not ``vae_config`` / ``vae_checkpoint`` are refused.
        reference: ``.npz`` (``mu``, ``sigma``) or a folder of real images.
        reference_size: centre-crop size of the images of a reference folder.
        reference_cache_dir: where folder statistics are cached (default: the folder).
        latent_multiplier: the dataset's multiplier after the normalisation.
        vae_preset: preset of ``vae_config`` (e.g. ``cpu``).
        grid_file: PNG of the first ``grid_images`` samples (by index); ``None``: no grid.
        grid_images: images in the grid.
        grid_nrow: images per grid row.
        decode_batch: latents decoded at once.
        device: where the VAE and Inception run (``None``: where the latents are).
        collect_device: ``'cpu'`` or ``'gpu'`` for gathering results across ranks.
        prefix: optional key prefix (default none).
    """

    default_prefix: str | None = None

    def __init__(self, vae_config: str, vae_checkpoint: str | None, latent_dir: str | None, reference: str,
                 reference_size: int = 256, reference_cache_dir: str | None = None, latent_multiplier: float = 1.0,
                 vae_preset: str | None = None, grid_file: str | None = None, grid_images: int = 64,
                 grid_nrow: int = 8, decode_batch: int = 16, device: str | None = None,
                 collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not reference:
            raise ValueError('GenerationFIDMetric needs `reference` (an ADM .npz with mu / sigma or a folder of real '
                             'images); set it with --cfg-options test_evaluator.reference=PATH')
        self.vae_config, self.vae_checkpoint, self.vae_preset = vae_config, vae_checkpoint, vae_preset
        self.latent_dir, self.latent_multiplier = latent_dir, latent_multiplier
        self.reference, self.reference_size, self.reference_cache_dir = reference, reference_size, reference_cache_dir
        self.grid_file, self.grid_images, self.grid_nrow = grid_file, grid_images, grid_nrow
        self.decode_batch, self.device = decode_batch, device
        self._feature_device: torch.device | None = None
        self._check_inputs()
        # loaded now, when the test loop is built: a missing, untrusted, mismatched or non-finite VAE checkpoint and
        # malformed latent statistics are refused before the first sample is drawn, not after the sampling
        self._decoder: FrozenLatentDecoder = FrozenLatentDecoder.from_config(
            self.vae_config, self.vae_checkpoint, self.latent_dir, self.latent_multiplier, 'cpu', self.vae_preset)

    def _check_inputs(self) -> None:
        """Every input file of the evaluation exists and is well-formed, and the grid can be written."""
        from transvae.utils.output_paths import check_outputs

        from .generation_fid import check_reference
        if not osp.isfile(self.vae_config):
            raise InputNotFoundError(f'GenerationFIDMetric: vae_config {self.vae_config} not found')
        ckpt = self.vae_checkpoint
        if ckpt not in (None, '', 'none', 'None') and '://' not in str(ckpt) and not osp.isfile(ckpt):
            raise InputNotFoundError(f'GenerationFIDMetric: vae_checkpoint {ckpt} not found (set it with '
                                    '--cfg-options test_evaluator.vae_checkpoint=PATH)')
        if self.latent_dir and not osp.isdir(self.latent_dir):
            raise InputNotFoundError(f'GenerationFIDMetric: latent_dir {self.latent_dir} not found (the latent folder '
                                    'whose statistics the DiT was trained with)')
        check_reference(self.reference)
        check_outputs({'test_evaluator.grid_file': self.grid_file},
                      {'FID reference': self.reference, 'VAE config': self.vae_config, 'VAE checkpoint': ckpt,
                       'latent folder': self.latent_dir})

    def _decoder_on(self, device: torch.device) -> FrozenLatentDecoder:
        return self._decoder.to(device)

    @torch.no_grad()
    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Decode and featurise the ``pred_latent`` ``(C, h, w)`` of each output (with its ``index``)."""
        if not data_samples:
            return
        missing = [k for k in ('pred_latent', 'index') if k not in data_samples[0]]
        if missing:
            raise KeyError(f'GenerationFIDMetric needs {missing} in each prediction (the DiT predict step on '
                           'ClassBalancedNoiseDataset items)')
        z = torch.stack([s['pred_latent'] for s in data_samples])
        device = torch.device(self.device) if self.device else z.device
        self._feature_device = device  # folder reference statistics are computed there too
        imgs = self._decoder_on(device)(z, chunk_size=self.decode_batch)  # (B, 3, H, W) in [0, 1]
        u8 = torch.round(imgs * 255).clamp(0, 255).to(torch.uint8)
        feats = get_fid_inception(device)(u8.to(device)).double().cpu().numpy()
        for s, f, im in zip(data_samples, feats, u8):
            i = int(s['index'])
            self.results.append(dict(index=i, label=int(s['label']), feat=f,
                                     image=im.clone() if i < self.grid_images else None))

    def compute_metrics(self, results: list[dict]) -> dict[str, Any]:
        results = sorted(results, key=lambda r: r['index'])
        indices = [r['index'] for r in results]
        if len(set(indices)) != len(indices):
            raise RuntimeError('GenerationFIDMetric got duplicate sample indices: the test sampler must not pad '
                               '(DefaultSampler(round_up=False))')
        feats = np.stack([r['feat'] for r in results])
        mu, sigma, ref_info = reference_statistics(self.reference, self.reference_size, self.reference_cache_dir,
                                                   str(self._feature_device or self.device or 'cpu'))
        fid = fid_against(mu, sigma, feats)
        grid = self._save_grid([r['image'] for r in results if r['image'] is not None])
        MMLogger.get_current_instance().info(f'FID-{len(results)} = {fid:.3f} against {self.reference}')
        return dict(fid=float(fid), num_samples=len(results), reference=ref_info, grid=grid)

    def _save_grid(self, images: list[torch.Tensor]) -> str | None:
        if not self.grid_file or not images:
            return None
        from torchvision.utils import save_image
        os.makedirs(osp.dirname(osp.abspath(self.grid_file)), exist_ok=True)
        save_image(torch.stack(images).float() / 255, self.grid_file, nrow=self.grid_nrow, padding=2)
        return self.grid_file
