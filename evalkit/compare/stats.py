"""Paired tests for the difference between two runs on the same items.

Two checkpoints answer the *same* items, so their scores are paired: an unpaired test
(comparing two means with their own standard errors, as lm-eval's comparator does)
ignores the item-level correlation and is far too conservative. Here:

* 0/1 scores: McNemar's exact test on the discordant pairs (scipy's binomial test);
* any score: a paired bootstrap over items (scipy's ``bootstrap``, BCa intervals),
  stratified by group when the row is a macro average over groups;
* aggregate-only metrics: the same bootstrap over item indices, recomputing the metric
  on each resample of the paired records;
* Holm's step-down correction across the rows of one comparison.

Deltas are always ``new - base``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

DEFAULT_RESAMPLES = 10_000
# scipy draws resamples in batches of this many (memory: batch x items floats).
_BATCH = 256


@dataclass(frozen=True)
class McNemar:
    """Discordant pairs and the exact two-sided p-value."""

    down: int  # 1 in base, 0 in new
    up: int  # 0 in base, 1 in new
    p: float


@dataclass(frozen=True)
class Interval:
    """A delta with its confidence interval and a two-sided bootstrap p-value."""

    delta: float
    low: float
    high: float
    p: float
    resamples: int


def is_binary(*arrays: np.ndarray) -> bool:
    """Whether every value is 0 or 1 (then McNemar applies)."""
    return all(np.isin(a, (0.0, 1.0)).all() for a in arrays)


def mcnemar_exact(base: np.ndarray, new: np.ndarray) -> McNemar:
    """McNemar's exact test for paired 0/1 scores: under no change, each discordant pair
    is equally likely to go either way, so the count of one kind is Binomial(b + c, 1/2)."""
    base = np.asarray(base, dtype=float)
    new = np.asarray(new, dtype=float)
    down = int(((base == 1) & (new == 0)).sum())
    up = int(((base == 0) & (new == 1)).sum())
    if down + up == 0:
        return McNemar(down, up, 1.0)
    p = stats.binomtest(min(down, up), down + up, 0.5, alternative="two-sided").pvalue
    return McNemar(down, up, float(min(1.0, p)))


def paired_bootstrap(
    base: np.ndarray,
    new: np.ndarray,
    *,
    strata: Sequence[str] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int | Sequence[int] = 0,
) -> Interval:
    """Bootstrap the mean paired difference ``new - base`` over items (BCa interval).

    With ``strata`` (one label per item), items are resampled within their stratum and
    the statistic is the mean of the per-stratum means: the bootstrap of a macro average.
    """
    diff = np.asarray(new, dtype=float) - np.asarray(base, dtype=float)
    if strata is None:
        groups = [diff]
    else:
        labels = np.asarray(strata)
        groups = [diff[labels == s] for s in sorted(set(labels.tolist()))]
    # A one-item stratum resamples to itself: a constant term of the macro average.
    samples = tuple(g for g in groups if g.size > 1)
    constant = float(sum(g.sum() for g in groups if g.size == 1))
    k = len(groups)

    def macro(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
        return (np.sum([x.mean(axis=axis) for x in xs], axis=0) + constant) / k

    observed = float(macro(*samples)) if samples else constant / k
    if all(np.ptp(s) == 0 for s in samples):
        # Every item moved by the same amount: no resample differs, so the bootstrap has
        # nothing to say; the sign test does (all n items changed the same way).
        n_moved = int(np.count_nonzero(diff))
        p = 1.0 if observed == 0 or n_moved == 0 else float(stats.binomtest(0, n_moved, 0.5).pvalue)
        return Interval(observed, observed, observed, p, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # BCa undefined: handled in _interval
        res = stats.bootstrap(samples, macro, n_resamples=resamples, vectorized=True, axis=-1, batch=_BATCH,
                              confidence_level=confidence, method="BCa", rng=np.random.default_rng(seed))
    return _interval(observed, res.bootstrap_distribution, res.confidence_interval, resamples, confidence)


def recomputed_bootstrap(
    n_items: int,
    delta_of: Callable[[np.ndarray], float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int | Sequence[int] = 0,
) -> Interval:
    """Bootstrap a delta that only exists as an aggregate (e.g. a bias score): resample
    item indices and call ``delta_of(indices)``, which recomputes the metric on the
    resampled records of both runs. Percentile interval (BCa would cost n more calls)."""
    idx = np.arange(n_items)
    observed = float(delta_of(idx))
    if n_items < 2:
        return Interval(observed, observed, observed, 1.0, 0)
    res = stats.bootstrap((idx,), lambda i: delta_of(np.asarray(i, dtype=int)), n_resamples=resamples,
                          vectorized=False, confidence_level=confidence, method="percentile",
                          rng=np.random.default_rng(seed))
    return _interval(observed, res.bootstrap_distribution, res.confidence_interval, resamples, confidence)


def _interval(observed: float, dist: np.ndarray, ci, resamples: int, confidence: float) -> Interval:
    dist = np.asarray(dist, dtype=float)
    dist = dist[np.isfinite(dist)]
    low, high = float(ci.low), float(ci.high)
    if not (np.isfinite(low) and np.isfinite(high)):  # BCa degenerate on near-constant data: percentile
        tail = (1 - confidence) / 2
        low, high = (float(np.quantile(dist, q)) for q in (tail, 1 - tail)) if dist.size else (observed, observed)
    return Interval(observed, low, high, bootstrap_p(observed, dist), resamples)


def bootstrap_p(observed: float, dist: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from a bootstrap distribution, by shifting it
    to be centred on zero (Efron & Tibshirani, ch. 16): how often a resample lies at least
    as far from the observed delta as the observed delta lies from zero."""
    dist = np.asarray(dist, dtype=float)
    if dist.size == 0:
        return float("nan")
    extreme = np.abs(dist - observed) >= abs(observed) - 1e-12
    return float((1 + extreme.sum()) / (dist.size + 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error rate); NaN entries (rows that could
    not be tested) stay NaN and do not count towards the family size."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()
