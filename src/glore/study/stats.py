"""Statistics of a study's results with scipy.stats.

:func:`describe` is one variant over its seeds (mean, sample standard deviation, a t confidence
interval of the mean); :func:`paired` is a variant against the baseline over the seeds they share:
the mean paired difference with a bootstrap confidence interval of it, the paired t-test and the
Wilcoxon signed-rank test. With n seeds the exact two-sided Wilcoxon p-value cannot go below
2 / 2**n (0.0625 for 5 seeds), so at 5 seeds only the t-test can reach p < 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def describe(values: Sequence[float], confidence: float = 0.95) -> dict:
    """``{n, mean, std, ci_low, ci_high}`` of ``values`` (std with n - 1; the interval from
    Student's t; NaN where one value gives no spread)."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    if n > 1 and std > 0:
        low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    elif n > 1:
        low = high = mean
    else:
        low = high = math.nan
    return {"n": n, "mean": mean, "std": std, "ci_low": float(low), "ci_high": float(high)}


def paired(values: Sequence[float], baseline: Sequence[float], confidence: float = 0.95, *,
           resamples: int = 10_000, seed: int = 0) -> dict:
    """``values - baseline`` seed by seed: ``{n, mean_diff, ci_low, ci_high, t_p, wilcoxon_p}``.

    The interval is scipy's bootstrap (BCa, ``resamples`` draws, fixed ``seed``) of the mean
    difference; ``t_p`` is ``ttest_rel``'s and ``wilcoxon_p`` the exact signed-rank test's, both
    two-sided. Differences that are all equal give a zero-width interval and p-values of NaN
    (nothing to test) unless they are all zero (p = 1)."""
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds: {a.size} values against {b.size}")
    diff = a - b
    n = int(diff.size)
    out = {"n": n, "mean_diff": float(diff.mean()) if n else math.nan}
    if n < 2 or np.all(diff == diff[0]):
        constant = float(diff[0]) if n else math.nan
        out.update(ci_low=constant, ci_high=constant,
                   t_p=1.0 if n >= 2 and constant == 0 else math.nan,
                   wilcoxon_p=1.0 if n >= 2 and constant == 0 else math.nan)
        return out
    interval = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=resamples,
                               method="BCa", random_state=np.random.default_rng(seed)).confidence_interval
    low, high = float(interval.low), float(interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):   # BCa degenerate on tiny samples
        interval = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=resamples,
                                   method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(interval.low), float(interval.high)
    nonzero = diff[diff != 0]
    wilcoxon_p = float(stats.wilcoxon(nonzero, method="exact").pvalue) if nonzero.size else 1.0
    out.update(ci_low=low, ci_high=high, t_p=float(stats.ttest_rel(a, b).pvalue), wilcoxon_p=wilcoxon_p)
    return out
