"""Paper studies: what a study is (:mod:`.study`), the paper's studies (:mod:`.figures`), training them resumably
with seeds (:mod:`.run`), reading their logs (:mod:`.logs`), reporting them (:mod:`.report`, :mod:`.plots`) and the
photos and checkpoints the picture tools use (:mod:`.photos`). ``tools/reproduce/*.py`` are thin command lines."""
from .study import (AGREE, DISAGREE, MISSING, NOT_RESOLVED, Claim, Judgement, SeedStats, Study, Variant, judge_claim,
                    seed_stats)

__all__ = ['AGREE', 'DISAGREE', 'MISSING', 'NOT_RESOLVED', 'Claim', 'Judgement', 'SeedStats', 'Study', 'Variant',
           'judge_claim', 'seed_stats']
