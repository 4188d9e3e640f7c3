"""Fig. 4(a) (multi-stage) / 4(b) (``--single-stage``): the Conv-FFN ablation (studies in paper_studies/paper.py).

    PYTHONPATH=. .venv/bin/python tools/reproduce/ablate_conv_ffn.py  # micro CPU run: 2 seeds x the main job's images
    PYTHONPATH=. .venv/bin/python tools/reproduce/ablate_conv_ffn.py --preset none --gpus 8 --max-iters 25025 \
        --batch-size 0  # paper

Outputs under ``--root`` (default ``work_dirs/reproduce/conv_ffn[_single]``): ``LABEL/seed_S/`` work dirs,
``curves.png``, ``results.csv``, ``results.md``. Re-running skips finished runs and resumes interrupted ones.
"""
import sys

from projects.paper_studies.paper_studies.cli import study_main
from projects.paper_studies.paper_studies.paper import FIG4A, FIG4B

if __name__ == '__main__':
    single = '--single-stage' in sys.argv
    argv = [a for a in sys.argv[1:] if a != '--single-stage']
    study_main(FIG4B if single else FIG4A, 'work_dirs/reproduce/conv_ffn' + ('_single' if single else ''), argv,
               __doc__.splitlines()[0])
