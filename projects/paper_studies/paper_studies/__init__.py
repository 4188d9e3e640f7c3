"""Paper studies (a project outside the library, imported from the repository root as
``projects.paper_studies.paper_studies``): what a study is (:mod:`.study`), the paper's studies (:mod:`.paper`),
training them resumably with seeds (:mod:`.run`), each held-out photo's metrics at the end of a run
(:mod:`.per_photo`) and the paired bootstrap verdict on them (:mod:`.bootstrap`), Fig. 5's slopes and scaling claim
(:mod:`.scaling`), reading their logs (:mod:`.logs`), reporting them (:mod:`.report`, :mod:`.plots`), step times (:mod:`.speed`), the photos and checkpoints the picture tools use (:mod:`.photos`,
:mod:`.pictures`) and per-checkpoint diagnostics (:mod:`.diagnostics`). ``tools/reproduce/*.py`` and
``tools/analysis_tools/study_diagnostics.py`` are thin command lines over it."""
from .study import (AGREE, DISAGREE, MISSING, NOT_RESOLVED, Claim, Judgement, SeedStats, Study, Variant, judge_claim,
                    seed_stats)

__all__ = ['AGREE', 'DISAGREE', 'MISSING', 'NOT_RESOLVED', 'Claim', 'Judgement', 'SeedStats', 'Study', 'Variant',
           'judge_claim', 'seed_stats']
