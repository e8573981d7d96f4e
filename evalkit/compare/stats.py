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

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

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
    dist: np.ndarray | None = field(default=None, repr=False, compare=False)  # bootstrap deltas


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
    return Interval(observed, low, high, bootstrap_p(observed, dist), resamples, dist)


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


# --- Single-run intervals -------------------------------------------------------------


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (0..1), or None without items.

    Unlike value ± 1.96 standard errors it never leaves [0, 1] and does not collapse to
    a zero-width interval at 0% or 100%: 10 of 10 right gives (0.72, 1.00), not 1.00 ± 0.
    ``successes`` may be fractional (a mean of 0/1 scores times n); it is rounded.
    """
    if not n or n <= 0:
        return None
    k = int(round(min(max(successes, 0), n)))
    ci = stats.binomtest(k, int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


# --- Non-inferiority: paired 0/1 scores (Tango's score test) --------------------------


def tango_z(b: int, c: int, n: int, delta0: float) -> float:
    """Tango's (1998) score statistic for paired 0/1 data, H0: (b - c) / n = delta0.

    ``b`` items went one way (e.g. right -> wrong) and ``c`` the other, of ``n`` pairs.
    The variance is taken under the null (constrained maximum likelihood), which keeps the
    test honest when no item changed: ``b = c = 0`` still leaves an interval of width
    about z^2 / n, where a Wald or bootstrap interval collapses to zero.
    """
    if delta0 < 0:  # symmetric: the constrained MLE below assumes delta0 >= 0
        return -tango_z(c, b, n, -delta0)
    w = -(b + c) + (2 * n - b + c) * delta0
    q = (math.sqrt(w * w + 8 * n * c * delta0 * (1 - delta0)) - w) / (4 * n)
    var = n * (2 * q + delta0 * (1 - delta0))
    diff = b - c - n * delta0
    if var <= 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(var)


def tango_interval(b: int, c: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided score interval for ``(b - c) / n`` (inverting ``tango_z``)."""
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    est = (b - c) / n
    eps = 1e-12

    def root(target: float, lo: float, hi: float, edge: float) -> float:
        f = lambda d: tango_z(b, c, n, d) - target  # noqa: E731 -- decreasing in d
        if f(lo) * f(hi) > 0:
            return edge
        return float(optimize.brentq(f, lo, hi, xtol=1e-10))

    low = root(z, -1 + eps, est, -1.0) if est > -1 else -1.0
    high = root(-z, est, 1 - eps, 1.0) if est < 1 else 1.0
    return low, high


def tango_margin_p(b: int, c: int, n: int, margin: float) -> tuple[float, float]:
    """One-sided p-values at the margin for ``theta = (b - c) / n`` (how much worse):
    ``(p_within, p_beyond)``: small ``p_within`` shows theta < margin (non-inferior),
    small ``p_beyond`` shows theta > margin (a regression beyond the allowed drop)."""
    if margin >= 1:
        return 0.0, 1.0
    z = tango_z(b, c, n, margin)
    return float(stats.norm.cdf(z)), float(stats.norm.sf(z))


# --- Non-inferiority: any score (bootstrap distribution, or no item moved) ------------


def bootstrap_margin_p(worse_dist: np.ndarray, margin: float) -> tuple[float, float]:
    """``(p_within, p_beyond)`` by inverting the percentile interval: the share of
    resamples of "how much worse" at or beyond the margin, and at or within it."""
    d = np.asarray(worse_dist, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan, math.nan
    return float((1 + (d >= margin).sum()) / (d.size + 1)), float((1 + (d <= margin).sum()) / (d.size + 1))


def unmoved_margin_p(worse: float, n: int, margin: float, score_range: float) -> tuple[float, float]:
    """``(p_within, p_beyond)`` when every item moved by the same amount ``worse`` (often 0:
    identical outputs). Nothing varies, so no resampling can say how often items would
    move in the population; what the data do bound is the share of items that could
    change unseen: with none of ``n`` changing, a share ``s`` is rejected at level
    ``(1 - s) ** n``. Each such item moves by at most ``score_range``, so "the drop stays
    within the margin" is shown at ``p = (1 - (margin - worse) / score_range) ** n``."""
    if worse > margin:  # every one of n items is worse by more than allowed: the sign test
        return 1.0, float(0.5 ** n)
    if not math.isfinite(score_range) or score_range <= 0:
        return 1.0, 1.0
    share = min((margin - worse) / score_range, 1.0)
    return float((1 - share) ** n), 1.0


# --- How many items would settle an inconclusive row ----------------------------------


def items_needed(worse: float, var: float, margin: float, alpha: float, power: float = 0.8,
                 *, binary: bool = False, score_range: float = 1.0) -> int | None:
    """Paired items for a one-sided test at ``alpha`` to reach a verdict with ``power``,
    if the true "how much worse" were the observed ``worse`` and the per-item variance of
    the paired differences ``var``: ``(z_a + z_b)^2 var / (margin - worse)^2``. When no
    item varies, the bound of ``unmoved_margin_p`` (or Tango's, for 0/1 scores) decides
    instead. None when the observed drop equals the margin (no n settles it)."""
    gap = abs(margin - worse)
    if gap < 1e-12:
        return None
    za, zb = stats.norm.ppf(1 - alpha), stats.norm.ppf(power)
    n = (za + zb) ** 2 * var / gap ** 2 if var > 0 else 0.0
    if worse < margin:  # heading for a pass: also the floor of an unmoved row
        if binary:
            floor = za ** 2 * (1 - margin) / margin if 0 < margin < 1 else 0.0
        elif math.isfinite(score_range) and score_range > 0:
            share = min(gap / score_range, 1.0)
            floor = math.log(alpha) / math.log(1 - share) if share < 1 else 1.0
        else:
            return None
        n = max(n, floor)
    return int(math.ceil(n)) + 1


def value_interval(value: float | None, stderr: float | None, n: int | None,
                   confidence: float = 0.95) -> tuple[float, float] | None:
    """The interval to show beside one run's value (on the 0..1 scale of the metric).

    A proportion (a value in [0, 1] whose standard error is that of 0/1 scores, or any
    value at exactly 0 or 1, where no score can have varied) gets the Wilson interval;
    anything else the normal one, value ± z * stderr. None without a standard error.
    """
    if value is None or not math.isfinite(value):
        return None
    if n and 0 <= value <= 1:
        binomial = math.sqrt(value * (1 - value) / max(n - 1, 1))
        if value in (0, 1) or stderr is None or (binomial > 0 and abs(stderr - binomial) <= 0.2 * binomial):
            return wilson(value * n, n, confidence)
    if stderr is None or not math.isfinite(stderr):
        return None
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    return value - z * stderr, value + z * stderr
