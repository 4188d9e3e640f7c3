"""Fig. 3(c), SeqConv part: conv patch-embed / pixel-shuffle head vs SeqConv in the encoder, decoder or both.

Variants (ViT-VAE-T w/ RoPE): ``conv`` (``patch_embed_conv``), ``seqconv_enc``, ``seqconv_dec``, ``seqconv_dual``.

    python tools/reproduce/ablate_patch_embedding.py --preset cpu --max-iters 150 --val-interval 50

Outputs under ``--root`` (default ``work_dirs/reproduce/patch_embedding``): work dirs, curves.png, results.csv/.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import Claim, Study, Variant, add_common_args, main_for_study  # noqa: E402

STUDY = Study(
    name='SeqConv patch embedding / decoder head (ViT-VAE-T w/ RoPE)',
    figure='Fig. 3(c)',
    variants=[
        Variant('conv', 'patch_embed_conv', 0.355, 'conv patch embed (k = s = 16) + pixel-shuffle head'),
        Variant('seqconv_enc', 'patch_embed_seqconv_enc', 0.34, 'SeqConv encoder embed'),
        Variant('seqconv_dec', 'patch_embed_seqconv_dec', 0.31, 'SeqConv decoder head'),
        Variant('seqconv_dual', 'patch_embed_seqconv_dual', 0.29, 'SeqConv in both'),
    ],
    expected_order=['seqconv_dual', 'seqconv_dec', 'seqconv_enc', 'conv'],
    claims=[
        Claim('seqconv_dual', '<', 'seqconv_dec', '≈0.29 vs 0.31'),
        Claim('seqconv_dec', '<', 'seqconv_enc', '≈0.31 vs 0.34'),
        Claim('seqconv_enc', '<', 'conv', '≈0.34 vs 0.355'),
    ],
    paper_note='Paper (PAPER.md §1.8 step 2, Fig. 3c, epoch 5): ViT-w-RoPE ≈0.355, +Enc ≈0.34, +Dec ≈0.31, '
    '+Dual ≈0.29.')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, default_root='work_dirs/reproduce/patch_embedding')
    main_for_study(STUDY, parser.parse_args(argv))


if __name__ == '__main__':
    main()
