"""The metric registry.

A metric sees all of a task's sample records at once (so it can compute ratios like
BBQ's bias score, or pass@k across samples) and returns a ``MetricResult``: the value,
its standard error, the per-sample scores it wrote (for the JSONL and for paired
comparisons) and an optional breakdown by group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.errors import ConfigError

Record = dict[str, Any]


@dataclass
class MetricResult:
    value: float
    stderr: float | None
    n: int
    per_sample: list[float | None] | None = None
    breakdown: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., MetricResult]
    higher_is_better: bool


METRICS: dict[str, Metric] = {}


def metric(name: str, *, higher_is_better: bool = True) -> Callable:
    """Register ``fn(records, **args) -> MetricResult`` under ``name``."""

    def wrap(fn: Callable[..., MetricResult]) -> Callable[..., MetricResult]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = Metric(name, fn, higher_is_better)
        return fn

    return wrap


def mean_stderr(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (sample std with ddof=1, as lm-eval)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return math.nan, None
    if arr.size == 1:
        return float(arr[0]), None
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def from_per_sample(records: Sequence[Record], values: list[float | None], aggregate: str = "micro") -> MetricResult:
    """Aggregate per-sample scores: overall (micro or macro over groups) plus per group."""
    groups: dict[str, list[float]] = {}
    for r, v in zip(records, values):
        if v is not None:
            groups.setdefault(r.get("group", ""), []).append(v)
    breakdown = {}
    if len(groups) > 1:
        for g, vs in sorted(groups.items()):
            m, se = mean_stderr(vs)
            breakdown[g] = {"value": m, "stderr": se, "n": len(vs)}
    n = sum(len(vs) for vs in groups.values())
    if aggregate == "macro" and len(groups) > 1:
        stats = [mean_stderr(vs) for vs in groups.values()]
        value = float(np.mean([m for m, _ in stats]))
        ses = [se for _, se in stats]
        stderr = None if any(se is None for se in ses) else float(math.sqrt(sum(se**2 for se in ses)) / len(ses))
    else:
        value, stderr = mean_stderr([v for vs in groups.values() for v in vs])
    return MetricResult(value, stderr, n, per_sample=list(values), breakdown=breakdown)


def compute_metrics(records: list[Record], metric_specs: list[dict[str, Any]], aggregate: str = "micro") -> dict[str, MetricResult]:
    """Run each configured metric over ``records``; write per-sample scores into them.

    A metric that returns None does not apply to these records and is left out.
    """
    out: dict[str, MetricResult] = {}
    for spec in metric_specs:
        spec = dict(spec)
        name = spec.pop("name")
        key = spec.pop("as", name)  # the same metric twice, e.g. strict and flexible extraction
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))}")
        # A metric may set its own ``aggregate`` (e.g. a macro average beside the micro row).
        res = METRICS[name].fn(records, **{"aggregate": aggregate, **spec})
        if res is None:  # not applicable to these records (pass@10 with fewer than 10 samples): no row at all
            continue
        if res.per_sample is not None:
            for r, v in zip(records, res.per_sample):
                r.setdefault("scores", {})[key] = v
        out[key] = res
    return out
