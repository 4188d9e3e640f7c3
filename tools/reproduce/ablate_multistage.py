"""Fig. 3(c): from the single-stage ViT-w-RoPE through SeqConv (Enc / Dec / Dual) to the multi-stage model.

Variants: ``vit_rope`` (``patch_embed_conv``: conv patch-embed + pixel-shuffle head, RoPE), ``seqconv_enc``,
``seqconv_dec``, ``seqconv_dual`` (``patch_embed_seqconv_*``), ``stage_multi``, ``cnn_vae``.
``stage_single.py`` builds the same model as ``patch_embed_seqconv_dual.py`` (ViT-w-RoPE + Dual SeqConv), so it is
not trained twice; ``--with-stage-single`` adds it anyway.

    python tools/reproduce/ablate_multistage.py --preset cpu --max-iters 150 --val-interval 50

Outputs under ``--root`` (default ``work_dirs/reproduce/multistage``): work dirs, curves.png, results.csv/.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import Claim, Study, Variant, add_common_args, main_for_study  # noqa: E402

STUDY = Study(
    name='single stage -> SeqConv -> multi-stage',
    figure='Fig. 3(c)',
    variants=[
        Variant('vit_rope', 'patch_embed_conv', 0.355, 'ViT-VAE-T w/ RoPE (conv patch embed, pixel-shuffle head)'),
        Variant('seqconv_enc', 'patch_embed_seqconv_enc', 0.34, '+ Enc SeqConv'),
        Variant('seqconv_dec', 'patch_embed_seqconv_dec', 0.31, '+ Dec SeqConv'),
        Variant('seqconv_dual', 'patch_embed_seqconv_dual', 0.29, '+ Dual SeqConv (= stage_single)'),
        Variant('stage_multi', 'stage_multi', 0.185, 'ViT w RoPE w Multi-Stage'),
        Variant('cnn_vae', 'cnn_vae', 0.185, 'CNN-VAE-T without attention'),
    ],
    expected_order=['cnn_vae', 'stage_multi', 'seqconv_dual', 'seqconv_dec', 'seqconv_enc', 'vit_rope'],
    expected_str='cnn_vae (≈0.183-0.185) ≈ stage_multi (≈0.185) ≪ seqconv_dual (≈0.29) < seqconv_dec (≈0.31) < '
    'seqconv_enc (≈0.34) < vit_rope (≈0.355)',
    claims=[
        Claim('seqconv_dual', '<', 'seqconv_dec', '≈0.29 vs 0.31'),
        Claim('seqconv_dec', '<', 'seqconv_enc', '≈0.31 vs 0.34'),
        Claim('seqconv_enc', '<', 'vit_rope', '≈0.34 vs 0.355'),
        Claim('stage_multi', '≪', 'seqconv_dual', 'single-stage ViT ≫ multi-stage'),
        Claim('stage_multi', '≪', 'vit_rope', 'single-stage ViT ≫ multi-stage'),
        Claim('stage_multi', '≈', 'cnn_vae', '≈0.185 vs 0.183-0.185'),
    ],
    paper_note='Paper (PAPER.md §1.8, Fig. 3c, epoch 5 of §3.1 A): ViT-w-RoPE ≈0.355, +Enc SeqConv ≈0.34, '
    '+Dec SeqConv ≈0.31, +Dual SeqConv ≈0.29, Multi-Stage ≈0.185, CNN-VAE ≈0.185 (≈0.183 in the text). '
    "'≪' = lower by more than 25%.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--with-stage-single', action='store_true',
                        help='also train configs/experiments/stage_single.py (same model as seqconv_dual)')
    add_common_args(parser, default_root='work_dirs/reproduce/multistage')
    args = parser.parse_args(argv)
    study = STUDY
    if args.with_stage_single:
        study.variants.append(Variant('stage_single', 'stage_single', 0.29, 'ViT-w-RoPE + Dual SeqConv'))
    main_for_study(study, args)


if __name__ == '__main__':
    main()
