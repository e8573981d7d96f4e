"""Multiple-choice metrics over per-option log-likelihoods."""

from __future__ import annotations


import numpy as np

from evalkit.metrics.registry import MetricResult, Record, from_per_sample, metric


def _golds(r: Record) -> list[int]:
    g = r["gold"]
    return list(g) if isinstance(g, list) else [g]


def predict(logprobs: list[float], lengths: list[int] | None = None) -> int:
    """Index of the best option; with ``lengths``, by log-likelihood per character."""
    scores = np.asarray(logprobs, dtype=float)
    if lengths is not None:
        scores = scores / np.maximum(np.asarray(lengths, dtype=float), 1.0)
    return int(np.argmax(scores))


@metric("acc")
def acc(records: list[Record], aggregate: str = "micro") -> MetricResult:
    """Top-1 accuracy: the option with the highest log-likelihood is a gold one."""
    values = [float(predict(r["logprobs"]) in _golds(r)) for r in records]
    return from_per_sample(records, values, aggregate)


@metric("acc_norm")
def acc_norm(records: list[Record], aggregate: str = "micro") -> MetricResult:
    """Accuracy after dividing each option's log-likelihood by its length in characters
    (lm-eval's ``acc_norm``), which removes the bias towards short options."""
    values = [float(predict(r["logprobs"], [len(c) for c in r["choices"]]) in _golds(r)) for r in records]
    return from_per_sample(records, values, aggregate)
