"""Paired bootstrap verdicts: a 95% interval of a claim's mean difference over seeds and held-out photos.

For a claim ``a REL b`` the paired differences ``d[s, p] = m_a[s, p] - m_b[s, p]`` of the claim metric (lower is
better) are taken per seed ``s`` and held-out photo ``p``, on the seeds and photos both variants have. The seeds and
the photos are crossed (every seed is evaluated on the same photos), so one bootstrap resample draws the seeds with
replacement as whole units (a seed's row of differences stays together) and, independently, the photos with
replacement (the same drawn photos for every drawn seed), and takes the mean of the resampled ``d``. The 95% interval
is the 2.5 / 97.5 percentile of ``resamples`` such means (percentile bootstrap, numpy only, a fixed RNG seed so a
report is reproducible). A seed effect (one seed better on every photo) therefore widens the interval, which a
bootstrap over the pooled ``S x P`` values would hide.

:func:`judge_interval` reads the interval as :func:`~.study.judge_claim` reads the seed means: with ``t`` the
claim's threshold (0 for ``<`` / ``>``, ``big * |mean(b)|`` for ``≪`` / ``≫``, ``tol * |mean(b)|`` for ``≈``),
``agree`` when the whole interval satisfies the claim, ``disagree`` when the whole interval contradicts it, and
otherwise ``no difference at this scale`` when the interval contains 0 (the difference is then stated to be smaller
than ``max(|lo|, |hi|)``) or ``not resolved`` (the direction is clear, its size against ``t`` is not). With one
common seed the interval holds the photo spread only, and the verdict is ``not resolved`` (as the seed-spread rule
gives with one seed).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .study import AGREE, DISAGREE, MISSING, NOT_RESOLVED, Claim

NO_DIFFERENCE = 'no difference at this scale'
#: Bootstrap resamples and RNG seed of the reports (fixed: the same per-photo files give the same interval).
RESAMPLES = 10000
RNG_SEED = 0

#: ``{seed: {photo: value}}``: one variant's per-photo values of one metric.
PerPhoto = Mapping[int, Mapping[str, float]]


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval of a mean.

    Attributes:
        mean: the observed mean of the values.
        lo / hi: the percentile interval.
        level: its coverage (0.95).
        n_seeds / n_photos: the shape of the values bootstrapped.
        resamples: how many resamples.
    """
    mean: float
    lo: float
    hi: float
    level: float
    n_seeds: int
    n_photos: int
    resamples: int

    @property
    def contains_zero(self) -> bool:
        return self.lo <= 0.0 <= self.hi

    @property
    def bound(self) -> float:
        """``max(|lo|, |hi|)``: when the interval contains 0, the difference is smaller than this."""
        return max(abs(self.lo), abs(self.hi))


def paired_differences(a: PerPhoto, b: PerPhoto) -> tuple[np.ndarray, np.ndarray, list[int], list[str]]:
    """``(d, b_values, seeds, photos)``: ``d[s, p] = a[s][p] - b[s][p]`` ``(S, P)`` and ``b[s][p]`` ``(S, P)`` on
    the seeds both variants have and the photos every one of those seeds has on both sides (sorted).

    Raises ``ValueError`` when no seed or no photo is common, or a value is not finite."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f'no common seed (a: {sorted(a)}, b: {sorted(b)})')
    photos = set.intersection(*(set(a[s]) & set(b[s]) for s in seeds))
    if not photos:
        raise ValueError(f'no held-out photo common to every seed {seeds} of both variants')
    photos = sorted(photos)
    av = np.array([[float(a[s][p]) for p in photos] for s in seeds], dtype=np.float64)
    bv = np.array([[float(b[s][p]) for p in photos] for s in seeds], dtype=np.float64)
    if not (np.isfinite(av).all() and np.isfinite(bv).all()):
        raise ValueError('per-photo values must be finite')
    return av - bv, bv, seeds, photos


def bootstrap_mean(d: np.ndarray, resamples: int = RESAMPLES, level: float = 0.95, seed: int = RNG_SEED,
                   resample_seeds: bool = True) -> Interval:
    """Percentile interval of the mean of ``d`` ``(S, P)`` (seeds x photos) by the crossed two-level bootstrap.

    Each resample draws ``S`` seed rows and ``P`` photo columns with replacement, independently (the drawn photos
    are the same for every drawn seed), and takes the mean of ``d`` over the drawn rows and columns;
    ``resample_seeds=False`` keeps the seeds fixed (a one-level bootstrap over photos, for a single seed or a
    comparison). Computed as ``c_s^T d c_p / (S P)`` with the multinomial draw counts ``c_s``, ``c_p``.
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f'd must be a non-empty (seeds, photos) array, got shape {d.shape}')
    if not 0.0 < level < 1.0:
        raise ValueError(f'level must be in (0, 1), got {level}')
    if resamples < 1:
        raise ValueError(f'resamples must be positive, got {resamples}')
    n_s, n_p = d.shape
    rng = np.random.default_rng(seed)
    if resample_seeds and n_s > 1:
        cs = rng.multinomial(n_s, np.full(n_s, 1.0 / n_s), size=resamples).astype(np.float64)
    else:
        cs = np.ones((resamples, n_s))
    cp = rng.multinomial(n_p, np.full(n_p, 1.0 / n_p), size=resamples).astype(np.float64)
    means = np.einsum('rs,sp,rp->r', cs, d, cp) / (n_s * n_p)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(d.mean()), float(lo), float(hi), level, n_s, n_p, resamples)


@dataclass(frozen=True)
class IntervalJudgement:
    """The interval verdict on one claim.

    Attributes:
        verdict: ``agree``, ``disagree``, ``no difference at this scale``, ``not resolved`` or ``missing``.
        interval: the interval of ``mean(a - b)`` (``None`` when missing).
        threshold: the claim's threshold ``t`` in the metric's units.
        detail: ``mean diff [lo, hi] -> verdict`` with the bound when the interval contains 0.
    """
    verdict: str
    interval: Optional[Interval]
    threshold: float
    detail: str


def judge_interval(rel: str, iv: Interval, ref: float = 0.0, tol: float = 0.03, big: float = 0.25
                   ) -> IntervalJudgement:
    """Read the interval ``iv`` of ``mean(a - b)`` for the relation ``a REL b`` (lower is better; ``ref``: mean of b,
    the scale of the relative thresholds). See the module docstring for the rule."""
    lo, hi = iv.lo, iv.hi
    if rel in ('<', '>', '≪', '≫'):
        t = big * abs(ref) if rel in ('≪', '≫') else 0.0
        # x = the claimed improvement of a over b: -d for '<' / '≪', d for '>' / '≫'; the claim is x > t
        x_lo, x_hi = (-hi, -lo) if rel in ('<', '≪') else (lo, hi)
        agree, disagree = x_lo > t, x_hi < t
    elif rel == '≈':
        t = tol * abs(ref)
        agree, disagree = (-t <= lo and hi <= t), (lo > t or hi < -t)
    else:
        raise ValueError(f'unknown relation {rel!r}')
    if iv.n_seeds < 2:  # the interval holds the photo spread only: as the seed rule, never better than this
        verdict = NOT_RESOLVED
    elif agree:
        verdict = AGREE
    elif disagree:
        verdict = DISAGREE
    elif iv.contains_zero:
        verdict = NO_DIFFERENCE
    else:
        verdict = NOT_RESOLVED
    detail = f'{iv.mean:+.4f} [{lo:+.4f}, {hi:+.4f}] -> {verdict}'
    if iv.n_seeds < 2:
        detail += ' (one seed: the seed-to-seed variation is unknown)'
    elif iv.contains_zero:
        detail += f' (|diff| < {iv.bound:.4f})'
    return IntervalJudgement(verdict, iv, t, detail)


def judge_paired(a: PerPhoto | None, b: PerPhoto | None, rel: str, relative: bool = True, tol: float = 0.03,
                 big: float = 0.25, resamples: int = RESAMPLES, seed: int = RNG_SEED,
                 what: str = 'per-photo data') -> IntervalJudgement:
    """The interval verdict on ``a REL b`` from two ``{seed: {photo: value}}`` (missing when either side is empty,
    or they share no seed / photo). ``relative``: the ``≪`` / ``≈`` thresholds scale with the mean of ``b`` (a
    difference of slopes has no such scale: ``relative=False`` judges against 0)."""
    if not a or not b:
        return IntervalJudgement(MISSING, None, math.nan, f'no {what}')
    try:
        d, bv, _, _ = paired_differences(a, b)
    except ValueError as e:
        return IntervalJudgement(MISSING, None, math.nan, f'no paired {what} ({e})')
    iv = bootstrap_mean(d, resamples=resamples, seed=seed)
    return judge_interval(rel, iv, ref=float(bv.mean()) if relative else 0.0, tol=tol, big=big)


def judge_claim_paired(claim: Claim, per_photo: Mapping[str, PerPhoto], tol: float = 0.03, big: float = 0.25,
                       resamples: int = RESAMPLES, seed: int = RNG_SEED) -> IntervalJudgement:
    """The interval verdict on ``claim`` from ``{label: {seed: {photo: value}}}`` (:func:`judge_paired`)."""
    return judge_paired(per_photo.get(claim.a), per_photo.get(claim.b), claim.rel, tol=tol, big=big,
                        resamples=resamples, seed=seed)


__all__ = ['NO_DIFFERENCE', 'RESAMPLES', 'RNG_SEED', 'Interval', 'IntervalJudgement', 'paired_differences',
           'bootstrap_mean', 'judge_interval', 'judge_paired', 'judge_claim_paired']
