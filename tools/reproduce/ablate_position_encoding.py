"""Fig. 3(b): position encoding of the ViT-VAE-T: learnable APE vs 2D RoPE vs none.

Variants: ``pe_ape``, ``pe_rope``, ``pe_none`` (``configs/experiments/pe_*.py``).

    python tools/reproduce/ablate_position_encoding.py --preset cpu --max-iters 150 --val-interval 50

For extrapolation to larger inputs (Fig. 3a) run ``test_rope_extrapolation.py`` on the checkpoints afterwards:

    python tools/reproduce/test_rope_extrapolation.py \\
        --ckpt work_dirs/reproduce/position_encoding/pe_rope --ckpt work_dirs/reproduce/position_encoding/pe_ape

Outputs under ``--root`` (default ``work_dirs/reproduce/position_encoding``): work dirs, curves.png, results.csv/.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import Claim, Study, Variant, add_common_args, main_for_study  # noqa: E402

STUDY = Study(
    name='position encoding (ViT-VAE-T)',
    figure='Fig. 3(b)',
    variants=[
        Variant('pe_ape', 'pe_ape', 0.365, 'learnable APE (ViT-VAE baseline)'),
        Variant('pe_rope', 'pe_rope', 0.357, '2D axial RoPE'),
        Variant('pe_none', 'pe_none', 0.424, 'no position encoding'),
    ],
    expected_order=['pe_rope', 'pe_ape', 'pe_none'],
    claims=[
        Claim('pe_rope', '<', 'pe_ape', '≈0.357 vs 0.365'),
        Claim('pe_ape', '<', 'pe_none', '≈0.365 vs 0.424'),
    ],
    paper_note='Paper (PAPER.md §1.7, Fig. 3b, epoch 5): no-PE ≈0.424, APE ≈0.365, RoPE ≈0.357.')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, default_root='work_dirs/reproduce/position_encoding')
    main_for_study(STUDY, parser.parse_args(argv))


if __name__ == '__main__':
    main()
