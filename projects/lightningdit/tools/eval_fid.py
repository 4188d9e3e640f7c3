"""FID of a LightningDiT checkpoint: class-balanced samples decoded by the frozen VAE, against reference statistics.

``python projects/lightningdit/tools/eval_fid.py DIT_CONFIG DIT_CKPT --vae-config C --vae-checkpoint K
--latent-dir D --ref REF [--num-samples 10000] [--num-classes K] [--batch-size 64] [--num-steps 250] [--shift 0.3]
[--cfg-scale 1.0] [--cfg-interval-start 0.11] [--ref-size 256] [--preset cpu] [--report R.md] [--out R.json]
[--grid G.png] [--launcher pytorch]``

``REF`` is an ADM-style ``.npz`` (``mu``, ``sigma``; e.g. ``VIRTUAL_imagenet256_labeled.npz``) or a folder of real
images (statistics of centre crops of ``--ref-size`` computed once and cached beside them). Distributed with
``torchrun --nproc_per_node=G ... --launcher pytorch`` (samples are split over ranks; the result does not depend on
G). Checkpoints are read weights-only (``--trust-checkpoint`` for an old pickled one you trust). Run from the
repository root; the project package is found through the repository root on ``sys.path`` (as with
``PYTHONPATH=.`` for ``tools/train.py``).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')))  # the repository root

from projects.lightningdit.lightningdit.evaluation.fid_tool import add_common_args, build_dit, evaluate, init_dist  # noqa: E402,E501


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='FID-N of a LightningDiT checkpoint (no CFG by default)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    add_common_args(p)
    p.add_argument('--report', help='Markdown report path')
    p.add_argument('--out', help='JSON report path')
    p.add_argument('--grid', help='PNG grid of the first 64 samples')
    return p.parse_args(argv)


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
