"""Fig. 1: CNN-VAE vs ViT-VAE vs TransVAE early in training -- val curves over seeds and one reconstruction grid.

Trains (or reuses) the three variants of ``FIG1`` (paper_studies/paper.py) for every seed with a checkpoint every
``--ckpt-every`` iterations (all kept), reports them (curves.png / results.md with the claims) and draws
``early_training_grid.png`` (rows = model x step of seed 0, columns = held-out photos).

    PYTHONPATH=. .venv/bin/python tools/reproduce/visualize_early_training.py --seeds 0 1 --steps 250 500 1250
"""
import argparse
import os.path as osp

from projects.paper_studies.paper_studies.cli import add_study_args, main_for_study
from projects.paper_studies.paper_studies.paper import FIG1
from projects.paper_studies.paper_studies.pictures import early_training_grid


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, nargs='+', default=[250, 500, 1250], help='iterations shown')
    parser.add_argument('--ckpt-every', type=int, default=250, help='checkpoint interval (the steps need one)')
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument('--crop', type=int, default=128, help='centre crop of the shown photos (multiple of 16)')
    add_study_args(parser, default_root='work_dirs/reproduce/fig1')
    args = parser.parse_args(argv)
    if any(s % args.ckpt_every for s in args.steps):
        parser.error(f'--steps {args.steps} must be multiples of --ckpt-every {args.ckpt_every}')
    args.cfg_options = [f'default_hooks.checkpoint.interval={args.ckpt_every}',
                        'default_hooks.checkpoint.max_keep_ckpts=-1', *args.cfg_options]
    main_for_study(FIG1, args)
    root = osp.abspath(args.root)
    print('grid:', early_training_grid(FIG1, root, sorted(args.steps), osp.join(root, 'early_training_grid.png'),
                                       seed=args.seeds[0], crop=args.crop, num_images=args.num_images))


if __name__ == '__main__':
    main()
