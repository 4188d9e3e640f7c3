"""Fig. 3(b): position encoding of the ViT-VAE-T (learnable APE vs 2D RoPE vs none); its checkpoints feed Fig. 3(a).

    PYTHONPATH=. .venv/bin/python tools/reproduce/ablate_position_encoding.py
    PYTHONPATH=. .venv/bin/python tools/reproduce/test_rope_extrapolation.py \
        --root work_dirs/reproduce/position_encoding  # 3(a)
"""
from projects.paper_studies.paper_studies.cli import study_main
from projects.paper_studies.paper_studies.paper import FIG3B

if __name__ == '__main__':
    study_main(FIG3B, 'work_dirs/reproduce/position_encoding', description=__doc__.splitlines()[0])
