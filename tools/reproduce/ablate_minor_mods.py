"""Fig. 4(c): Q/K RMSNorm and the DC path on the multi-stage + FullConv-FFN model.

    PYTHONPATH=. .venv/bin/python tools/reproduce/ablate_minor_mods.py

The paper's differences are ~1% of the loss: expect "not resolved" unless the seed spread is smaller.
"""
from projects.paper_studies.paper_studies.cli import study_main
from projects.paper_studies.paper_studies.paper import FIG4C

if __name__ == '__main__':
    study_main(FIG4C, 'work_dirs/reproduce/minor_mods', description=__doc__.splitlines()[0])
