"""The statistics of a study: a variant's mean over seeds with its Student-t interval, and a variant's difference
from a baseline with an interval and a test that count both sources of noise.

- Seeds: each seed is one independent training run, so the per-seed scores give Welch's two-sample t (unequal
  variances).
- Test set: every run is scored on the same test examples (``data.split_seed``), so a paired bootstrap that redraws
  the examples, the same draw for every run (Koehn, 2004; sacrebleu's ``--paired-bs``), gives the variance that the
  seed-mean difference would have over other test sets of the same size.

The two variances add (law of total variance) and Welch-Satterthwaite degrees of freedom treat the bootstrap part as
known. This is slightly conservative: the seed x example interaction is counted in both parts.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """A variant's values over its seeds."""

    n: int
    mean: float
    std: float | None  # sample standard deviation (ddof 1); None for one value
    half_width: float | None  # of the Student-t interval of the mean; None: one value, no interval


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values to summarize")
    if values.size == 1:
        return Summary(1, float(values[0]), None, None)
    std = float(values.std(ddof=1))
    quantile = scipy_stats.t.ppf(0.5 + confidence / 2, values.size - 1)
    return Summary(int(values.size), float(values.mean()), std, float(quantile * std / math.sqrt(values.size)))


@dataclass(frozen=True)
class Difference:
    """``variant - baseline`` of the seed means, with its interval and two-sided test (None: no interval)."""

    difference: float
    low: float | None
    high: float | None
    p_value: float | None
    seed_se: float | None  # standard error from the seeds (Welch)
    test_se: float | None  # standard error from the test-set bootstrap; None when no per-example files exist


def compare(baseline: Sequence[float], variant: Sequence[float], test_variance: float | None = None,
            confidence: float = CONFIDENCE) -> Difference:
    """Welch's t over seeds, widened by ``test_variance`` (the bootstrap variance of the seed-mean difference)."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(variant, dtype=float)
    difference = float(b.mean() - a.mean())
    test_se = None if test_variance is None else math.sqrt(test_variance)
    if a.size < 2 or b.size < 2:
        return Difference(difference, None, None, None, None, test_se)
    parts = (a.var(ddof=1) / a.size, b.var(ddof=1) / b.size)
    seed_variance = sum(parts)
    variance = seed_variance + (test_variance or 0.0)
    if variance == 0.0:  # every run scored the same: no noise, the difference is what it is
        return Difference(difference, difference, difference, float(difference == 0.0), 0.0, test_se)
    seed_df = parts[0] ** 2 / (a.size - 1) + parts[1] ** 2 / (b.size - 1)
    df = variance**2 / seed_df if seed_df > 0 else math.inf
    se = math.sqrt(variance)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    p_value = float(2 * scipy_stats.t.sf(abs(difference) / se, df))
    return Difference(difference, difference - half, difference + half, p_value, math.sqrt(seed_variance), test_se)


def resample_weights(num_examples: int, num_samples: int = 1000, seed: int = 0) -> np.ndarray:
    """``(num_samples, num_examples)`` counts: how often each example is drawn in each bootstrap resample. One
    matrix for every run makes the bootstrap paired."""
    draws = np.random.default_rng(seed).integers(0, num_examples, size=(num_samples, num_examples))
    return np.stack([np.bincount(row, minlength=num_examples) for row in draws]).astype(np.float64)


ScoreFromSums = Callable[[np.ndarray], np.ndarray]  # (R, k) summed per-example statistics -> (R,) scores


def resampled_scores(weights: np.ndarray, example_stats: np.ndarray, score: ScoreFromSums) -> np.ndarray:
    """A run's score on each resample: its per-example statistics ``(N, k)`` summed with the resample's counts."""
    return score(weights @ example_stats)


def bootstrap_variance(baseline: Sequence[np.ndarray], variant: Sequence[np.ndarray]) -> float:
    """Bootstrap variance of the seed-mean difference; each item is one run's scores on the shared resamples."""
    return float((np.mean(variant, axis=0) - np.mean(baseline, axis=0)).var(ddof=1))


def paired_bootstrap_p(baseline: np.ndarray, variant: np.ndarray, observed: float) -> float:
    """One pair of runs' paired-bootstrap p-value as sacrebleu computes it (``--paired-bs``, after Clark et al.'s
    MultEval): how often the centred resampled |difference| exceeds the observed one."""
    differences = np.abs(variant - baseline)
    return float((np.sum(differences - differences.mean() > abs(observed)) + 1) / (differences.size + 1))
