"""Metrics over generated answers."""

from __future__ import annotations

from collections import Counter
from typing import Any

from evalkit.metrics.normalize import get_normalizer
from evalkit.metrics.registry import MetricResult, Record, from_per_sample, metric


def _refs(target: Any) -> list[str]:
    return [str(t) for t in target] if isinstance(target, (list, tuple)) else [str(target)]


def matches(pred: str | None, target: Any, normalize: str = "strip") -> bool:
    """Whether ``pred`` equals any reference after normalisation."""
    if pred is None:
        return False
    norm = get_normalizer(normalize)
    p = norm(pred)
    return any(p == norm(ref) for ref in _refs(target))


@metric("exact_match")
def exact_match(records: list[Record], extract: str = "answer", normalize: str = "strip",
                aggregate: str = "micro") -> MetricResult:
    """The first sample's extracted answer equals a reference (maj@1 when greedy, n=1)."""
    values = [float(matches(r["extracted"][0].get(extract), r["target"], normalize)) for r in records]
    return from_per_sample(records, values, aggregate)


@metric("majority_match")
def majority_match(records: list[Record], extract: str = "answer", normalize: str = "strip",
                   aggregate: str = "micro") -> MetricResult:
    """maj@n: the most frequent extracted answer over the n samples equals a reference."""
    norm = get_normalizer(normalize)
    values = []
    for r in records:
        answers = [norm(e[extract]) for e in r["extracted"] if e.get(extract) is not None]
        top = Counter(answers).most_common(1)[0][0] if answers else None
        values.append(float(top is not None and matches(top, r["target"], normalize)))
    return from_per_sample(records, values, aggregate)
