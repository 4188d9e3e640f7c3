"""What a paper study is: its variants, the paper's claims about them, and how a claim is judged against seeds.

A :class:`Study` (one figure) lists :class:`Variant` s (one experiment config each) and the :class:`Claim` s the
paper makes about their validation reconstruction loss. Every variant is trained with several seeds; a claim is
judged on the seed means, with the seed spread as the yardstick (:func:`judge_claim`): a difference inside the
spread is "not resolved", never "disagree".
"""
from __future__ import annotations

import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Optional, Sequence

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
EXP_DIR = osp.join(REPO, 'configs', 'experiments')

AGREE, DISAGREE, NOT_RESOLVED, MISSING = 'agree', 'disagree', 'not resolved', 'missing'
RELATIONS = ('<', '>', '≈', '≪', '≫')


@dataclass
class Variant:
    """One study point.

    Args:
        label: short name, also the work sub-directory.
        config: experiment config name (``configs/experiments/<name>.py``) or a path.
        paper: approximate paper value of the val reconstruction loss (PAPER.md §1.7-1.8), if given.
        desc: what the variant is, in the paper's words.
        hooks: extra ``custom_hooks`` appended in the overlay config.
        model_from: a config whose ``model`` replaces the variant config's (e.g. a CNN-VAE on the TransVAE recipe).
        cfg_options: extra ``--cfg-options`` of this variant (``key=value`` strings).
    """
    label: str
    config: str
    paper: Optional[float] = None
    desc: str = ''
    hooks: list = field(default_factory=list)
    model_from: Optional[str] = None
    cfg_options: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> str:
        return resolve_config(self.config)


def resolve_config(config: str) -> str:
    """An existing config path, or ``configs/experiments/<config>[.py]``."""
    if osp.isfile(config):
        return osp.abspath(config)
    for path in (osp.join(REPO, config), osp.join(EXP_DIR, config if config.endswith('.py') else config + '.py')):
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'config not found: {config} (looked in {REPO} and {EXP_DIR})')


@dataclass
class Claim:
    """A relation the paper states between two variants' val reconstruction loss (lower is better): ``a REL b``.

    ``'<'`` a lower, ``'>'`` a higher, ``'≈'`` within ``tol`` relative of b, ``'≪'`` / ``'≫'`` lower / higher by
    more than ``big`` relative of b.
    """
    a: str
    rel: str
    b: str
    note: str = ''

    def __post_init__(self) -> None:
        if self.rel not in RELATIONS:
            raise ValueError(f'claim relation must be one of {RELATIONS}, got {self.rel!r}')


@dataclass
class Study:
    """A figure's variants, the paper's expected ordering (best first) and its pairwise claims."""
    name: str
    figure: str
    variants: list[Variant]
    expected_order: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    paper_note: str = ''
    expected_str: str = ''

    def select(self, labels: Optional[Sequence[str]]) -> list[Variant]:
        """The variants named in ``labels`` (all when ``None``); unknown names are an error."""
        if not labels:
            return list(self.variants)
        known = [v.label for v in self.variants]
        unknown = sorted(set(labels) - set(known))
        if unknown:
            raise ValueError(f'unknown variants {unknown}; known: {known}')
        return [v for v in self.variants if v.label in labels]


@dataclass
class SeedStats:
    """A metric over seeds: ``mean``, ``spread`` (max - min; NaN with fewer than two seeds) and the values."""
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    @property
    def spread(self) -> float:
        return max(self.values) - min(self.values) if len(self.values) >= 2 else math.nan


def seed_stats(values: Sequence[float]) -> SeedStats:
    """:class:`SeedStats` of the finite values."""
    return SeedStats([float(v) for v in values if v is not None and math.isfinite(float(v))])


@dataclass
class Judgement:
    """The verdict on one claim.

    Attributes:
        verdict: ``agree``, ``disagree``, ``not resolved`` or ``missing``.
        diff: mean(a) - mean(b).
        margin: by how much the claim holds beyond its threshold (negative: fails), in the metric's units.
        spread: the larger of the two variants' seed spreads (the yardstick).
        detail: a one-line human summary.
    """
    verdict: str
    diff: float
    margin: float
    spread: float
    detail: str


def judge_claim(claim: Claim, stats: dict[str, SeedStats], tol: float = 0.03, big: float = 0.25) -> Judgement:
    """Judge ``claim`` on per-seed values (lower is better).

    With ``d = mean(a) - mean(b)`` and the threshold ``t`` (0 for ``<``/``>``, ``big * |mean(b)|`` for ``≪``/``≫``,
    ``tol * |mean(b)|`` for ``≈``), the claim's margin is ``x - t`` where ``x`` is ``-d`` (``<``, ``≪``) or ``d``
    (``>``, ``≫``); for ``≈`` it is ``t - |d|``. With ``s`` the larger of the two seed spreads:
    ``agree`` when the margin exceeds ``s``, ``disagree`` when it is below ``-s``, else ``not resolved``. For ``≈``,
    ``agree`` needs only ``|d| <= t`` (a difference inside the tolerance is what the paper says), ``disagree`` needs
    ``|d| - s > t``. Fewer than two seeds on either side gives an unknown spread: never better than ``not resolved``.
    """
    sa, sb = stats.get(claim.a), stats.get(claim.b)
    if sa is None or sb is None or not sa.n or not sb.n:
        return Judgement(MISSING, math.nan, math.nan, math.nan, 'missing')
    d = sa.mean - sb.mean
    spreads = [sa.spread, sb.spread]
    s = max(spreads) if all(math.isfinite(x) for x in spreads) else math.inf
    ref = abs(sb.mean)
    if claim.rel == '≈':
        t = tol * ref
        margin = t - abs(d)
        if abs(d) <= t and math.isfinite(s):
            verdict = AGREE
        elif abs(d) - s > t:
            verdict = DISAGREE
        else:
            verdict = NOT_RESOLVED
    else:
        t = big * ref if claim.rel in ('≪', '≫') else 0.0
        x = -d if claim.rel in ('<', '≪') else d
        margin = x - t
        verdict = AGREE if margin > s else DISAGREE if margin < -s else NOT_RESOLVED
    spread_str = f'{s:.4f}' if math.isfinite(s) else 'n/a (one seed)'
    detail = (f'{sa.mean:.4f} vs {sb.mean:.4f} (diff {d:+.4f}, {d / max(ref, 1e-12) * 100:+.1f}%); margin '
              f'{margin:+.4f} vs seed spread {spread_str}')
    return Judgement(verdict, d, margin, s, detail)
