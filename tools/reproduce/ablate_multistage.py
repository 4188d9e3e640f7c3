"""Fig. 3(c): single-stage ViT-w-RoPE -> SeqConv (Enc / Dec / Dual) -> multi-stage, with the CNN-VAE reference.

    PYTHONPATH=. .venv/bin/python tools/reproduce/ablate_multistage.py [--only vit_rope seqconv_dual ...] [--seeds 0 1]

Outputs under ``--root`` (default ``work_dirs/reproduce/multistage``). ``stage_single.py`` builds the same model as
``patch_embed_seqconv_dual.py``, so it is not trained twice.
"""
from projects.paper_studies.paper_studies.cli import study_main
from projects.paper_studies.paper_studies.paper import FIG3C

if __name__ == '__main__':
    study_main(FIG3C, 'work_dirs/reproduce/multistage', description=__doc__.splitlines()[0])
