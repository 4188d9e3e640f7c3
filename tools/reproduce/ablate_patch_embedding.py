"""Fig. 3(c), SeqConv part only: the ViT-VAE-T w/ RoPE with SeqConv in the encoder, decoder or both.

Same runs as ``ablate_multistage.py --only vit_rope seqconv_enc seqconv_dec seqconv_dual`` (same work dirs by
default, so either tool reuses the other's finished runs).
"""
import sys

from projects.paper_studies.paper_studies.cli import study_main
from projects.paper_studies.paper_studies.paper import FIG3C

if __name__ == '__main__':
    argv = sys.argv[1:]
    if '--only' not in argv:
        argv += ['--only', 'vit_rope', 'seqconv_enc', 'seqconv_dec', 'seqconv_dual']
    study_main(FIG3C, 'work_dirs/reproduce/multistage', argv, __doc__.splitlines()[0])
