"""Shared pieces of the FID tools (``projects/lightningdit/tools/eval_fid.py``, ``fid_vs_step.py``): arguments,
loading a DiT checkpoint (weights-only by default, through the core's ``checkpoint_io``), one evaluation."""
from __future__ import annotations

import argparse
import os

import torch

from .generation_fid import fid_against, reference_statistics
from .report import protocol
from .sampling import generate_features


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--vae-config', required=True, help='config of the VAE that produced the latents')
    p.add_argument('--vae-checkpoint', default='none', help='its checkpoint ("none": it loads its own weights)')
    p.add_argument('--vae-preset', help='preset of the VAE config (e.g. cpu)')
    p.add_argument('--latent-dir', required=True, help='latent folder (its latents_stats.safetensors)')
    p.add_argument('--latent-multiplier', type=float, default=1.0)
    p.add_argument('--ref', required=True, help='reference statistics .npz (mu, sigma) or a folder of real images')
    p.add_argument('--ref-size', type=int, default=256, help='centre-crop size of a reference image folder')
    p.add_argument('--ref-cache-dir', help='where folder statistics are cached (default: the folder)')
    p.add_argument('--num-samples', type=int, default=10000)
    p.add_argument('--num-classes', type=int, help='classes to balance over (default: the model\'s)')
    p.add_argument('--classes-from-latents', action='store_true',
                   help='balance over the labels present in --latent-dir (small sets with unused class slots)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--num-steps', type=int, help='ODE steps (default: the config\'s, 250)')
    p.add_argument('--shift', type=float, help='time-grid shift (default: the config\'s, 0.3)')
    p.add_argument('--sampler', choices=['euler', 'heun'], help='ODE solver (default: the config\'s, Euler)')
    p.add_argument('--cfg-scale', type=float, default=1.0, help='1.0 = no CFG (Fig. 6)')
    p.add_argument('--cfg-interval-start', type=float, default=0.11)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--preset', help='preset of the DiT config (e.g. cpu)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code; only files you trust)')


def build_dit(config: str, checkpoint: str | None, preset: str | None, device: str,
              args: argparse.Namespace) -> torch.nn.Module:
    """The DiT of ``config`` with the checkpoint's ``state_dict`` (the EMA weights of an EMAHook run)."""
    from mmengine.config import Config

    from transvae.engine.checkpoint_io import load_weights
    from transvae.engine.utils import apply_preset
    from transvae.registry import MODELS
    from transvae.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(config)
    if preset:
        apply_preset(cfg, preset)
    if args.num_steps is not None:
        cfg.model.sampler.num_steps = args.num_steps
    if args.shift is not None:
        cfg.model.sampler.shift = args.shift
    if args.sampler is not None:
        cfg.model.sampler.type = {'euler': 'EulerODESampler', 'heun': 'HeunODESampler'}[args.sampler]
    cfg.model.guidance = dict(type='ClassifierFreeGuidance', scale=args.cfg_scale,
                              interval_start=args.cfg_interval_start)
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_weights(model, checkpoint, config_name=config, allow_partial=False,
                     trusted=getattr(args, 'trust_checkpoint', False),
                     tool_hint='`projects/lightningdit/tools/eval_fid.py {config} {ckpt}`')
    return model.to(device).eval()


def init_dist(launcher: str) -> None:
    if launcher == 'pytorch' and not torch.distributed.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))


def evaluate(model, decoder, args, progress: bool = True) -> tuple[float, dict, dict]:
    """``(fid, protocol, run info)`` of ``model`` on every rank."""
    mu, sigma, ref_info = reference_statistics(args.ref, args.ref_size, args.ref_cache_dir, args.device)
    k = args.num_classes or model.backbone.num_classes
    if args.classes_from_latents:
        from projects.lightningdit.lightningdit.datasets import LatentShardDataset
        k = sorted(set(LatentShardDataset(args.latent_dir, use_flip=False, latent_norm=False).labels.tolist()))
    out = generate_features(model, decoder, args.num_samples, k, args.batch_size, args.seed, device=args.device,
                            progress=progress)
    fid = fid_against(mu, sigma, out['feats'])
    proto = protocol(args.num_samples, k, model.sampler, args.cfg_scale, args.cfg_interval_start, ref_info,
                     args.seed)
    run = dict(sampling_seconds_rank0=round(out['seconds'], 1), device=str(args.device),
               world_size=torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1)
    return fid, proto, dict(run, images=out['images'])


