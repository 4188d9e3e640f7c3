"""The paired two-level bootstrap of a claim's mean difference (paper_studies.bootstrap): hand cases, the seeds
resampled as units, scipy's one-level bootstrap, and the reading of an interval as a verdict."""
import numpy as np
import pytest

from projects.paper_studies.paper_studies import AGREE, DISAGREE, MISSING, NOT_RESOLVED, Claim
from projects.paper_studies.paper_studies.bootstrap import (NO_DIFFERENCE, Interval, bootstrap_mean, judge_claim_paired,
                                                            judge_interval, paired_differences)

PHOTO_SPREAD = np.linspace(-0.01, 0.01, 8)  # one value per held-out photo


def _iv(lo, hi, mean=None):
    return Interval((lo + hi) / 2 if mean is None else mean, lo, hi, 0.95, 2, 8, 10000)


def test_constant_difference_gives_a_zero_width_interval_at_it():
    iv = bootstrap_mean(np.full((3, 8), -0.02))
    assert iv.mean == pytest.approx(-0.02, abs=1e-15)
    assert iv.lo == pytest.approx(-0.02, abs=1e-12) and iv.hi == pytest.approx(-0.02, abs=1e-12)
    assert (iv.n_seeds, iv.n_photos, iv.resamples) == (3, 8, 10000)
    assert judge_interval('<', iv).verdict == AGREE and judge_interval('>', iv).verdict == DISAGREE


def test_symmetric_two_seed_case():
    """Two seeds, +1 and -1 on every photo: resampled means are -1, 0, +1 with probability 1/4, 1/2, 1/4, so the
    95% percentile interval is [-1, 1], centred on the mean 0, and the photos (no spread) add nothing."""
    d = np.stack([np.ones(8), -np.ones(8)])
    iv = bootstrap_mean(d)
    assert iv.mean == 0.0 and iv.lo == pytest.approx(-1.0) and iv.hi == pytest.approx(1.0)
    j = judge_interval('<', iv)
    assert j.verdict == NO_DIFFERENCE and '|diff| < 1.0000' in j.detail
    assert j.detail.startswith('+0.0000 [-1.0000, +1.0000]')
    # the same seeds kept fixed (one level, photos only): no spread left at all
    fixed = bootstrap_mean(d, resample_seeds=False)
    assert fixed.lo == pytest.approx(0.0, abs=1e-12) and fixed.hi == pytest.approx(0.0, abs=1e-12)


def test_seeds_are_resampled_as_units():
    """A seed effect (every photo of a seed shifted alike) widens the interval; the same photo spread without it
    does not; pooling the seed x photo values as independent photos would hide the seed effect."""
    seed_effect = np.array([-0.03, -0.01, 0.01, 0.03])[:, None]
    with_seeds = 0.05 + PHOTO_SPREAD[None, :] + seed_effect
    without = 0.05 + np.tile(PHOTO_SPREAD, (4, 1))
    w_with = (lambda iv: iv.hi - iv.lo)(bootstrap_mean(with_seeds))
    w_without = (lambda iv: iv.hi - iv.lo)(bootstrap_mean(without))
    w_pooled = (lambda iv: iv.hi - iv.lo)(bootstrap_mean(with_seeds.reshape(1, -1)))
    assert bootstrap_mean(with_seeds).mean == pytest.approx(0.05) == bootstrap_mean(without).mean
    assert w_with > 2 * w_without and w_with > 1.5 * w_pooled
    # the reproducible RNG: the same input and seed give the same interval, another seed a slightly different one
    assert bootstrap_mean(with_seeds) == bootstrap_mean(with_seeds)
    assert bootstrap_mean(with_seeds, seed=1).lo != bootstrap_mean(with_seeds).lo


def test_one_level_case_matches_scipy_bootstrap():
    """One seed (photos resampled): scipy.stats.bootstrap's percentile interval with the same number of resamples.
    Tolerance: 5% of the interval width (the Monte-Carlo error of two independent 10,000-resample runs; measured
    0.2-1.7% over five RNG seeds)."""
    stats = pytest.importorskip('scipy.stats')
    x = np.random.default_rng(1).normal(0.1, 0.05, size=8)
    for rng_seed in (0, 1, 2):
        iv = bootstrap_mean(x[None, :], resamples=10000, seed=rng_seed)
        ref = stats.bootstrap((x,), np.mean, n_resamples=10000, method='percentile',
                              random_state=rng_seed).confidence_interval
        width = ref.high - ref.low
        assert abs(iv.lo - ref.low) < 0.05 * width and abs(iv.hi - ref.high) < 0.05 * width
    # seeds fixed, photos resampled jointly: the one-level bootstrap of the photos' seed means
    d = np.stack([x, x + 0.02, x - 0.01])
    iv = bootstrap_mean(d, resample_seeds=False, seed=3)
    ref = stats.bootstrap((d.mean(0),), np.mean, n_resamples=10000, method='percentile',
                          random_state=3).confidence_interval
    assert abs(iv.lo - ref.low) < 0.05 * (ref.high - ref.low) and abs(iv.hi - ref.high) < 0.05 * (ref.high - ref.low)


def test_interval_read_as_the_seed_rule_reads_the_claims():
    # '<' / '>': the side of 0
    assert judge_interval('<', _iv(-0.03, -0.01)).verdict == AGREE
    assert judge_interval('<', _iv(0.01, 0.03)).verdict == DISAGREE
    assert judge_interval('>', _iv(0.01, 0.03)).verdict == AGREE
    j = judge_interval('<', _iv(-0.004, 0.002))
    assert j.verdict == NO_DIFFERENCE and '|diff| < 0.0040' in j.detail
    # '≪': beyond 25% of b (ref 0.4 -> t 0.1)
    assert judge_interval('≪', _iv(-0.2, -0.15), ref=0.4).verdict == AGREE
    assert judge_interval('≪', _iv(-0.05, -0.02), ref=0.4).verdict == DISAGREE  # lower, but by 5-12% only
    assert judge_interval('≪', _iv(-0.12, -0.05), ref=0.4).verdict == NOT_RESOLVED  # straddles -25%
    assert judge_interval('≪', _iv(-0.02, 0.01), ref=0.4).verdict == DISAGREE  # no gap at all: not the claimed one
    assert judge_interval('≫', _iv(0.15, 0.2), ref=0.4).verdict == AGREE
    # '≈': inside the 3% band (ref 0.4 -> t 0.012)
    assert judge_interval('≈', _iv(-0.01, 0.011), ref=0.4).verdict == AGREE
    assert judge_interval('≈', _iv(0.02, 0.03), ref=0.4).verdict == DISAGREE
    assert judge_interval('≈', _iv(-0.005, 0.02), ref=0.4).verdict == NO_DIFFERENCE
    assert judge_interval('≈', _iv(0.005, 0.02), ref=0.4).verdict == NOT_RESOLVED
    with pytest.raises(ValueError):
        judge_interval('<=', _iv(0, 1))


def test_paired_claim_from_per_photo_values():
    photos = [f's{i}/p{i}.png' for i in range(8)]
    b = {s: {p: 0.40 + PHOTO_SPREAD[i] for i, p in enumerate(photos)} for s in (0, 1, 2)}
    a = {s: {p: v - 0.05 + 0.002 * s for p, v in b[s].items()} for s in (0, 1)}  # seed 2 of a is missing
    a[0]['extra/x.png'] = 0.0  # a photo only one side has: left out
    d, bv, seeds, ph = paired_differences(a, b)
    assert seeds == [0, 1] and ph == photos and d.shape == (2, 8) and bv.mean() == pytest.approx(0.40)
    j = judge_claim_paired(Claim('a', '<', 'b'), {'a': a, 'b': b})
    assert j.verdict == AGREE and j.interval.mean == pytest.approx(-0.049) and j.interval.hi < 0
    assert judge_claim_paired(Claim('a', '≪', 'b'), {'a': a, 'b': b}).verdict == DISAGREE  # 12%, not > 25%
    assert judge_claim_paired(Claim('a', '<', 'c'), {'a': a, 'b': b}).verdict == MISSING
    one = judge_claim_paired(Claim('a', '<', 'b'), {'a': {0: a[0]}, 'b': b})  # one common seed: photos only
    assert one.verdict == NOT_RESOLVED and one.interval.hi < 0 and 'one seed' in one.detail
    assert judge_claim_paired(Claim('a', '<', 'b'), {'a': a, 'b': {5: b[0]}}).detail.startswith('no paired')
    with pytest.raises(ValueError):
        bootstrap_mean(np.zeros((0, 3)))
