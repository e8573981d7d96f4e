"""Recompute an aggregate-only metric (e.g. a bias ratio) on a subset of records.

Some metrics have no per-sample value: BBQ's bias score, say, is a ratio over all items.
Their paired bootstrap resamples items and recomputes the metric on each resample, which
needs the metric's registered function and the arguments the task gave it. The runner
records those (``metric_specs`` and ``aggregate`` per task in ``results.json``); a run
folder without them makes such a row "not testable", never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]


class NotTestable(Exception):
    """No paired test is possible for this row; the message says why in one line."""


def metric_function(task_result: dict[str, Any], key: str) -> Callable[[list[Record]], float]:
    """``f(records) -> value`` of metric ``key`` as the run computed it, or ``NotTestable``."""
    from evalkit.metrics import METRICS

    specs = task_result.get("metric_specs")
    if not specs:
        raise NotTestable(f"{key} has no per-sample scores and the run folder does not record the metric's "
                          "arguments (rerun with this evalkit to record them)")
    spec = next((dict(s) for s in specs if s.get("as", s.get("name")) == key), None)
    if spec is None:
        raise NotTestable(f"{key} is not among the run's recorded metrics")
    name = spec.pop("name")
    spec.pop("as", None)
    if name not in METRICS:
        raise NotTestable(f"metric {name!r} is not registered in this evalkit")
    fn = METRICS[name].fn
    kwargs = {"aggregate": task_result.get("aggregate", "micro"), **spec}  # a metric may set its own aggregate

    def value(records: list[Record]) -> float:
        return float(fn(records, **kwargs).value)

    return value


def metric_aggregate(task_result: dict[str, Any], key: str) -> str | None:
    """How metric ``key`` averages its per-sample scores (micro/macro) as the run recorded
    it: the metric's own ``aggregate`` argument, else the task's; None for older runs."""
    spec = next((s for s in task_result.get("metric_specs") or [] if s.get("as", s.get("name")) == key), {})
    agg = spec.get("aggregate", task_result.get("aggregate"))
    return agg if agg in ("micro", "macro") else None


def check_reproduces(fn: Callable[[list[Record]], float], records: list[Record], recorded: float, key: str) -> None:
    """Refuse to bootstrap a metric whose recomputation does not give the recorded value."""
    got = fn(records)
    if not (math.isclose(got, recorded, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(got) and math.isnan(recorded))):
        raise NotTestable(f"recomputing {key} from the records gives {got:.6g}, not the recorded {recorded:.6g}")
