# Stage ablation (Fig. 3c): single stage -- ViT-VAE-T w/ RoPE + Dual SeqConv, all blocks at stride 16.
# Identical to patch_embed_seqconv_dual.py; compare stage_multi.py (same block and RoPE, 2 CNN stages in front).
_base_ = ['./patch_embed_seqconv_dual.py']
