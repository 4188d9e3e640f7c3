"""Fig. 1: reconstructions early in training -- CNN-VAE vs ViT-VAE vs TransVAE at the same steps.

Trains (or reuses, via done.json / --resume auto) ``cnn_vae``, ``pe_ape`` (the ViT-VAE-T baseline, learnable APE) and
``transvae_rope`` (TransVAE-T) with checkpoints every gcd(--steps) iterations (all kept) and a
``ReconstructionGridHook(at_iters=steps)``, then reconstructs the same val photos with each ``iter_{step}.pth`` and
writes ONE grid: rows = model x step (plus the inputs), columns = images.

    python tools/reproduce/visualize_early_training.py --steps 50 150 400 --preset cpu
    python tools/reproduce/visualize_early_training.py --steps 50 150 400 --no-train      # re-draw only

Outputs under ``--root`` (default ``work_dirs/reproduce/early_training``): ``early_training_grid.png``, and as for
the ablations curves.png / results.csv / results.md (Fig. 1b: val rec loss of the three models).
"""
import argparse
import math
import os.path as osp
import sys
from functools import reduce

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import (Claim, Study, Variant, add_common_args, center_crop_photo, load_model,  # noqa: E402
                     main_for_study, reconstruct_images, resolve_checkpoint, val_photo_paths)

MODELS = {
    'cnn': Variant('cnn_vae', 'cnn_vae', 0.183, 'CNN-VAE-T (no attention)'),
    'vit': Variant('vit_vae', 'pe_ape', 0.36, 'ViT-VAE-T (APE)'),
    'transvae': Variant('transvae', 'transvae_rope', 0.178, 'TransVAE-T'),
}
NAMES = {'cnn_vae': 'CNN-VAE', 'vit_vae': 'ViT-VAE', 'transvae': 'TransVAE'}


def make_study(keys, steps, num_images):
    variants = []
    for k in keys:
        v = MODELS[k]
        variants.append(Variant(v.label, v.config, v.paper, v.desc,
                                hooks=[dict(type='ReconstructionGridHook', interval=0, at_iters=list(steps),
                                            num_images=num_images)]))
    return Study(
        name='early training: CNN-VAE vs ViT-VAE vs TransVAE', figure='Fig. 1(b)', variants=variants,
        expected_order=['transvae', 'cnn_vae', 'vit_vae'],
        expected_str='transvae (≈0.178) < cnn_vae (≈0.183) ≪ vit_vae (≈0.36)',
        claims=[Claim('transvae', '<', 'cnn_vae', '≈0.178 vs 0.183'), Claim('cnn_vae', '≪', 'vit_vae')],
        paper_note='Paper (PAPER.md §1.8, Fig. 1b, epoch 5): CNN-VAE ≈0.183, ViT-VAE ≈0.36, TransVAE ≈0.178.')


def draw_grid(study, steps, root, crop, num_images, out_png):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    paths = val_photo_paths(num=num_images, one_per_source=True)
    images = [center_crop_photo(p, crop)[0] for p in paths]
    rows = [('input', images)]
    for v in study.variants:
        for step in steps:
            try:
                cfg, ckpt = resolve_checkpoint(osp.join(root, v.label), step=step)
            except FileNotFoundError as e:
                print(f'{v.label} @ {step}: {e}; row left empty', file=sys.stderr)
                rows.append((f'{NAMES.get(v.label, v.label)}\nstep {step}\n(missing)', [None] * len(images)))
                continue
            model = load_model(cfg, ckpt)
            with torch.no_grad():
                recs = reconstruct_images(model, images)
            rows.append((f'{NAMES.get(v.label, v.label)}\nstep {step}', recs))
    n_r, n_c = len(rows), len(images)
    fig, axes = plt.subplots(n_r, n_c, figsize=(2.0 * n_c + 1.2, 2.0 * n_r), squeeze=False)
    for r, (name, imgs) in enumerate(rows):
        for c, img in enumerate(imgs):
            ax = axes[r][c]
            if img is not None:
                ax.imshow(img.clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0:
                ax.set_title(osp.basename(osp.dirname(paths[c])), fontsize=9)
    fig.suptitle(f'Reconstructions during early training ({crop}x{crop} center crops of the val photos)')
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, nargs='+', default=[50, 150, 400], help='iterations to show')
    parser.add_argument('--models', nargs='+', choices=sorted(MODELS), default=['cnn', 'vit', 'transvae'])
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument('--crop', type=int, default=128, help='center crop of the shown photos (multiple of 16)')
    add_common_args(parser, default_root='work_dirs/reproduce/early_training')
    args = parser.parse_args(argv)
    steps = sorted(set(args.steps))
    if args.max_iters is None:
        args.max_iters = steps[-1]
    if args.max_iters < steps[-1]:
        parser.error(f'--max-iters {args.max_iters} < largest step {steps[-1]}')
    every = reduce(math.gcd, steps)
    args.cfg_options = [f'default_hooks.checkpoint.interval={every}', 'default_hooks.checkpoint.max_keep_ckpts=-1',
                        *args.cfg_options]
    study = make_study(args.models, steps, args.num_images)
    main_for_study(study, args)
    out = draw_grid(study, steps, osp.abspath(args.root), args.crop, args.num_images,
                    osp.join(osp.abspath(args.root), 'early_training_grid.png'))
    print(f'grid: {out}')


if __name__ == '__main__':
    main()
