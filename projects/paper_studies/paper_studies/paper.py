"""The paper's studies: variants (configs/experiments), the paper's values and its claims (PAPER.md §1.7-1.8).

Values are the val reconstruction loss (L1 + LPIPS) read off the paper's figures at ImageNet 256², batch 256; the
micro CPU runs compare orderings, not values.
"""
from __future__ import annotations

from .study import Claim, Study, Variant

FIG1 = Study(
    name='early training: CNN-VAE vs ViT-VAE vs TransVAE', figure='Fig. 1(b)',
    variants=[Variant('cnn_vae', 'cnn_vae', 0.183, 'CNN-VAE-T (no attention)'),
              Variant('vit_vae', 'pe_ape', 0.36, 'ViT-VAE-T (APE)'),
              Variant('transvae', 'transvae_rope', 0.178, 'TransVAE-T')],
    expected_order=['transvae', 'cnn_vae', 'vit_vae'],
    expected_str='transvae (≈0.178) < cnn_vae (≈0.183) ≪ vit_vae (≈0.36)',
    claims=[Claim('transvae', '<', 'cnn_vae', '≈0.178 vs 0.183'), Claim('cnn_vae', '≪', 'vit_vae')],
    paper_note='Paper (PAPER.md §1.8, Fig. 1b, epoch 5): CNN-VAE ≈0.183, ViT-VAE ≈0.36, TransVAE ≈0.178.')

FIG3B = Study(
    name='position encoding (ViT-VAE-T)', figure='Fig. 3(b)',
    variants=[Variant('pe_ape', 'pe_ape', 0.365, 'learnable APE (ViT-VAE baseline)'),
              Variant('pe_rope', 'pe_rope', 0.357, '2D axial RoPE'),
              Variant('pe_none', 'pe_none', 0.424, 'no position encoding')],
    expected_order=['pe_rope', 'pe_ape', 'pe_none'],
    claims=[Claim('pe_rope', '<', 'pe_ape', '≈0.357 vs 0.365'), Claim('pe_ape', '<', 'pe_none', '≈0.365 vs 0.424')],
    paper_note='Paper (PAPER.md §1.7, Fig. 3b, epoch 5): no-PE ≈0.424, APE ≈0.365, RoPE ≈0.357. The same runs '
    'give Fig. 3(a) (extrapolation, tools/reproduce/test_rope_extrapolation.py).')

FIG3C = Study(
    name='single stage -> SeqConv -> multi-stage', figure='Fig. 3(c)',
    variants=[Variant('vit_rope', 'patch_embed_conv', 0.355, 'ViT-VAE-T w/ RoPE (conv patch embed, pixel-shuffle)'),
              Variant('seqconv_enc', 'patch_embed_seqconv_enc', 0.34, '+ Enc SeqConv'),
              Variant('seqconv_dec', 'patch_embed_seqconv_dec', 0.31, '+ Dec SeqConv'),
              Variant('seqconv_dual', 'patch_embed_seqconv_dual', 0.29, '+ Dual SeqConv (= stage_single)'),
              Variant('stage_multi', 'stage_multi', 0.185, 'ViT w RoPE w Multi-Stage'),
              Variant('cnn_vae', 'cnn_vae', 0.185, 'CNN-VAE-T without attention')],
    expected_order=['cnn_vae', 'stage_multi', 'seqconv_dual', 'seqconv_dec', 'seqconv_enc', 'vit_rope'],
    expected_str='cnn_vae (≈0.183-0.185) ≈ stage_multi (≈0.185) ≪ seqconv_dual (≈0.29) < seqconv_dec (≈0.31) < '
    'seqconv_enc (≈0.34) < vit_rope (≈0.355)',
    claims=[Claim('seqconv_dual', '<', 'seqconv_dec', '≈0.29 vs 0.31'),
            Claim('seqconv_dec', '<', 'seqconv_enc', '≈0.31 vs 0.34'),
            Claim('seqconv_enc', '<', 'vit_rope', '≈0.34 vs 0.355'),
            Claim('stage_multi', '≪', 'seqconv_dual', 'single-stage ViT ≫ multi-stage'),
            Claim('stage_multi', '≪', 'vit_rope', 'single-stage ViT ≫ multi-stage'),
            Claim('stage_multi', '≈', 'cnn_vae', '≈0.185 vs 0.183-0.185')],
    paper_note='Paper (PAPER.md §1.8, Fig. 3c, epoch 5): ViT-w-RoPE ≈0.355, +Enc ≈0.34, +Dec ≈0.31, +Dual ≈0.29, '
    "Multi-Stage ≈0.185, CNN-VAE ≈0.185. '≪' = lower by more than 25%.")

FIG4A = Study(
    name='Conv-FFN on the multi-stage model', figure='Fig. 4(a)',
    variants=[Variant('ffn_standard', 'ffn_standard', 0.185, 'multi-stage, point-wise MLP x4 (= stage_multi)'),
              Variant('ffn_dwconv', 'ffn_dwconv', 0.183, 'multi-stage, DWConv-FFN x4'),
              Variant('ffn_fullconv', 'ffn_fullconv', 0.179, 'multi-stage, FullConv-FFN x1'),
              Variant('cnn_vae', 'cnn_vae', 0.183, 'CNN-VAE-T without attention')],
    expected_order=['ffn_fullconv', 'ffn_dwconv', 'cnn_vae', 'ffn_standard'],
    expected_str='ffn_fullconv (≈0.179) < ffn_dwconv (≈0.183) ≈ cnn_vae (≈0.183) < ffn_standard (≈0.185)',
    claims=[Claim('ffn_fullconv', '<', 'ffn_dwconv'),
            Claim('ffn_fullconv', '<', 'cnn_vae', '≈0.179 vs 0.183'),
            Claim('ffn_dwconv', '≈', 'cnn_vae', 'DWConv ≈ CNN level'),
            Claim('cnn_vae', '<', 'ffn_standard', '≈0.183 vs 0.185'),
            Claim('ffn_fullconv', '<', 'ffn_standard')],
    paper_note='Paper (PAPER.md §1.8 step 4): FullConv ≈0.179 < DWConv ≈ CNN-VAE ≈0.183 < standard ≈0.185.')

FIG4B = Study(
    name='Conv-FFN on the single-stage ViT (RoPE + Dual SeqConv)', figure='Fig. 4(b)',
    variants=[Variant('ffn_single_standard', 'ffn_single_standard', 0.36, 'ViT-w-RoPE, point-wise MLP x4'),
              Variant('ffn_single_dwconv', 'ffn_single_dwconv', 0.42, 'ViT-w-RoPE, DWConv-FFN x4'),
              Variant('ffn_single_fullconv', 'ffn_single_fullconv', 0.36, 'ViT-w-RoPE, FullConv-FFN x1'),
              Variant('cnn_vae', 'cnn_vae', 0.183, 'CNN-VAE-T without attention')],
    expected_order=['cnn_vae', 'ffn_single_fullconv', 'ffn_single_standard', 'ffn_single_dwconv'],
    claims=[Claim('ffn_single_dwconv', '>', 'ffn_single_standard', '≈0.42 vs 0.36'),
            Claim('ffn_single_fullconv', '≈', 'ffn_single_standard', '≈0.36 vs 0.36'),
            Claim('cnn_vae', '≪', 'ffn_single_standard', 'single-stage ViT ≫ CNN')],
    paper_note='Paper (PAPER.md §1.8 step 4, Fig. 4b): DWConv ends worse than the plain ViT-w-RoPE (≈0.42 vs 0.36).')

FIG4C = Study(
    name='Q/K RMSNorm and DC path (multi-stage + FullConv-FFN)', figure='Fig. 4(c)',
    variants=[Variant('minor_baseline', 'minor_baseline', None, 'neither'),
              Variant('minor_rmsnorm', 'minor_rmsnorm', 0.164, 'Q/K RMSNorm only (TransVAE w/o DC)'),
              Variant('minor_dc', 'minor_dc', 0.163, 'DC path only (TransVAE w/o RMSNorm)'),
              Variant('minor_both', 'minor_both', 0.162, 'both = TransVAE-T')],
    expected_order=['minor_both', 'minor_dc', 'minor_rmsnorm'],
    claims=[Claim('minor_both', '<', 'minor_dc', '≈0.162 vs 0.163'),
            Claim('minor_both', '<', 'minor_rmsnorm', '≈0.162 vs 0.164'),
            Claim('minor_both', '<', 'minor_baseline'),
            Claim('minor_dc', '≈', 'minor_rmsnorm', 'both ≈0.163-0.164')],
    paper_note='Paper (PAPER.md §1.8 step 5, Fig. 4c, 10 epochs): TransVAE ≈0.162, w/o DC ≈0.164, w/o RMSNorm ≈0.163.')

#: The main job's model and a plain CNN-VAE of about the same size (1.50M vs 1.39M parameters: LDM ResBlocks, two
#: per level), both on the main job's recipe (configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py).
MAIN_CONFIG = 'configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py'
TIME_TO_QUALITY = Study(
    name='time to quality: micro TransVAE vs a CNN-VAE of the same size', figure='"faster convergence" (§1)',
    variants=[Variant('transvae_micro', MAIN_CONFIG, None, 'TransVAE-micro f8d16, 1.50M parameters'),
              Variant('cnn_micro', MAIN_CONFIG, None, 'CNN-VAE-micro f8d16, 1.39M parameters',
                      model_from='configs/_base_/models/cnn-vae-micro_f8d16.py',
                      cfg_options=['model.arch.num_res_blocks=2'])],
    claims=[Claim('transvae_micro', '<', 'cnn_micro', 'TransVAE converges faster at equal size')],
    paper_note='The paper claims faster convergence than CNN-VAEs (§1, Fig. 1b); here at equal parameter count on '
    'the main job\'s recipe, with held-out quality after k iterations at k x the s/it measured interleaved in one '
    'process (paper_studies.speed; report: time_to_quality.png / .md).')

STUDIES = {'fig1': FIG1, 'fig3b': FIG3B, 'fig3c': FIG3C, 'fig4a': FIG4A, 'fig4b': FIG4B, 'fig4c': FIG4C,
           'time_to_quality': TIME_TO_QUALITY}
