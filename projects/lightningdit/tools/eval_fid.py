"""FID of a LightningDiT checkpoint: class-balanced samples decoded by the frozen VAE, against reference statistics.

``python projects/lightningdit/tools/eval_fid.py DIT_CONFIG DIT_CKPT --vae-config C --vae-checkpoint K
--latent-dir D --ref REF [--num-samples 10000] [--num-classes K] [--batch-size 64] [--num-steps 250] [--shift 0.3]
[--cfg-scale 1.0] [--cfg-interval-start 0.11] [--ref-size 256] [--preset cpu] [--report R.md] [--out R.json]
[--grid G.png] [--launcher pytorch]``

``REF`` is an ADM-style ``.npz`` (``mu``, ``sigma``; e.g. ``VIRTUAL_imagenet256_labeled.npz``) or a folder of real
images (statistics of centre crops of ``--ref-size`` computed once and cached beside them). Distributed with
``torchrun --nproc_per_node=G ... --launcher pytorch`` (samples are split over ranks; the result does not depend on
G). Checkpoints are unpickled: only evaluate files you trust.
"""
import os

os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')  # mmengine checkpoints (ENVIRONMENT.md §2.1)

import argparse  # noqa: E402
import os.path as osp  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')))

import torch  # noqa: E402


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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='FID-N of a LightningDiT checkpoint (no CFG by default)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    add_common_args(p)
    p.add_argument('--report', help='Markdown report path')
    p.add_argument('--out', help='JSON report path')
    p.add_argument('--grid', help='PNG grid of the first 64 samples')
    return p.parse_args(argv)


def build_dit(config: str, checkpoint: str | None, preset: str | None, device: str, args) -> torch.nn.Module:
    """The DiT of ``config`` with the checkpoint's ``state_dict`` (the EMA weights of an EMAHook run)."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

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
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    return model.to(device).eval()


def init_dist(launcher: str) -> None:
    if launcher == 'pytorch' and not torch.distributed.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))


def evaluate(model, decoder, args, progress: bool = True) -> tuple[float, dict, dict]:
    """``(fid, protocol, run info)`` of ``model`` on every rank."""
    from projects.lightningdit.lightningdit.evaluation import (fid_against, generate_features, protocol,
                                                               reference_statistics)
    mu, sigma, ref_info = reference_statistics(args.ref, args.ref_size, args.ref_cache_dir, args.device)
    k = args.num_classes or model.backbone.num_classes
    out = generate_features(model, decoder, args.num_samples, k, args.batch_size, args.seed, device=args.device,
                            progress=progress)
    fid = fid_against(mu, sigma, out['feats'])
    proto = protocol(args.num_samples, k, model.sampler, args.cfg_scale, args.cfg_interval_start, ref_info,
                     args.seed)
    run = dict(sampling_seconds_rank0=round(out['seconds'], 1), device=str(args.device),
               world_size=torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1)
    return fid, proto, dict(run, images=out['images'])


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    init_dist(args.launcher)
    from mmengine.dist import get_rank

    from projects.lightningdit.lightningdit.evaluation import FrozenLatentDecoder, build_report, write_report
    model = build_dit(args.config, args.checkpoint, args.preset, args.device, args)
    decoder = FrozenLatentDecoder.from_config(args.vae_config, args.vae_checkpoint, args.latent_dir,
                                              args.latent_multiplier, args.device, args.vae_preset)
    fid, proto, run = evaluate(model, decoder, args)
    images = run.pop('images')
    if get_rank() != 0:
        return None
    if args.grid and images is not None:
        from torchvision.utils import save_image
        os.makedirs(osp.dirname(osp.abspath(args.grid)), exist_ok=True)
        save_image(images.float() / 255, args.grid, nrow=8, padding=2)
        run['grid'] = args.grid
    report = build_report(fid, args.num_samples, proto,
                          dict(dit_config=args.config, dit_checkpoint=args.checkpoint, vae_config=args.vae_config,
                               vae_checkpoint=args.vae_checkpoint, latent_dir=args.latent_dir),
                          extra=run, command=' '.join(sys.argv))
    write_report(report, args.report, args.out)
    print(f'FID-{args.num_samples} = {fid:.3f}' + (f' ({report["warnings"][0]})' if report['warnings'] else ''))
    return report


if __name__ == '__main__':
    main()
