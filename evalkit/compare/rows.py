"""Compare two run folders row by row: paired deltas, intervals, p-values, Holm.

A row is a card row (``card`` of the task spec, as in the report) or, for a task that
fills no card row, its primary metric. For every task in both runs the records are
paired by item id (``pairing``); then, per row:

* per-sample scores that are 0/1 and averaged over items: McNemar's exact test, with a
  paired-bootstrap BCa interval for the delta;
* other per-sample scores (averaged over items, or macro over groups): paired bootstrap
  (stratified by group for a macro average);
* a metric with no per-sample scores, or whose value is not the mean of its per-sample
  scores: the bootstrap recomputes the metric on resampled records (``recompute``), or
  the row is "not testable" with the reason.

Values, deltas and intervals are on the card's scale (points); p-values are adjusted
with Holm across all tested rows of the comparison.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.compare.gate import Gate, Rule
from evalkit.compare.pairing import NotComparable, PairedTask, pair_task
from evalkit.compare.recompute import NotTestable, check_reproduces, metric_aggregate, metric_function
from evalkit.compare.stats import holm, is_binary, mcnemar_exact, paired_bootstrap, recomputed_bootstrap
from evalkit.metrics.registry import from_per_sample
from evalkit.card import card_position, column_labels, row_entries

Record = dict[str, Any]
MAX_FLIPS = 25  # items kept per direction for the report's drill-down


@dataclass
class RowDelta:
    """One row of a comparison (values in points on the card's scale; delta = new - base)."""

    table: str
    row: str
    label: str
    task: str
    metric: str
    scale: float
    higher_is_better: bool
    status: str = "ok"  # ok | not comparable | not testable
    reason: str = ""
    base: float | None = None  # on the paired items
    new: float | None = None
    n: int = 0  # paired items
    unpaired: tuple[int, int] = (0, 0)  # items only in base, only in new
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    p_holm: float | None = None
    test: str = ""
    resamples: int = 0
    discordant: tuple[int, int] | None = None  # McNemar: items that went 1 -> 0, and 0 -> 1
    flips: dict[str, Any] = field(default_factory=dict)  # worse/better: counts and a few items
    rule: Rule | None = None
    verdict: str = ""  # set by gate_verdicts

    @property
    def key(self) -> str:
        return f"{self.table}:{self.row}"

    @property
    def name(self) -> str:
        return f"{self.row} ({self.label})" if self.label else self.row

    def significant(self, alpha: float) -> bool:
        return self.p_holm is not None and not math.isnan(self.p_holm) and self.p_holm < alpha


@dataclass
class Comparison:
    """``new`` against ``base``: every comparable row, plus what could not be compared."""

    base_dir: str
    new_dir: str
    base_label: str
    new_label: str
    rows: list[RowDelta]
    only_base: list[str]  # tasks only one run has
    only_new: list[str]
    gate: Gate

    @property
    def failed(self) -> list[RowDelta]:
        return [r for r in self.rows if r.verdict == "regression"
                or (r.verdict == "not comparable" and (r.rule is None or r.rule.enforce))]

    @property
    def passed(self) -> bool:
        return not self.failed


def compare_runs(base: dict[str, Any], new: dict[str, Any], gate: Gate, labels: tuple[str, str] | None = None) -> Comparison:
    """Compare run ``new`` with run ``base`` (both ``load_results`` dicts)."""
    rows: list[RowDelta] = []
    for task, tb in base["tasks"].items():
        if task not in new["tasks"]:
            continue
        tn = new["tasks"][task]
        specs = row_entries(task, tb)
        try:
            paired: PairedTask | None = pair_task(base, new, task)
            reason = ""
        except NotComparable as e:
            paired, reason = None, str(e)
        for spec in specs:
            hib = bool(tb.get("higher_is_better", {}).get(spec["metric"], True))
            row = RowDelta(spec["table"], spec["row"], spec["label"], task, spec["metric"], float(spec["scale"]), hib)
            if paired is None:
                row.status, row.reason = "not comparable", reason
            else:
                _fill(row, paired, tb, tn, gate)
            rows.append(row)
    rows.sort(key=lambda r: (*card_position(r.table, r.row), r.row))  # the card's order, as in the report
    adjusted = holm([r.p if r.status == "ok" and r.p is not None else math.nan for r in rows])
    for r, p in zip(rows, adjusted):
        r.p_holm = None if math.isnan(p) else p
    base_label, new_label = labels or (base["run_dir"], new["run_dir"])
    comp = Comparison(base["run_dir"], new["run_dir"], base_label, new_label, rows,
                      sorted(set(base["tasks"]) - set(new["tasks"])), sorted(set(new["tasks"]) - set(base["tasks"])), gate)
    gate_verdicts(comp)
    return comp


def gate_verdicts(comp: Comparison) -> None:
    """Attach each row's rule and verdict. A row regresses when it moved in its worse
    direction by more than ``max_drop`` points and the change is significant (Holm)."""
    gate = comp.gate
    for r in comp.rows:
        r.rule = gate.rule_for(r.table, r.row, r.task, r.higher_is_better)
        if r.status != "ok":
            r.verdict = r.status
            continue
        worse_by = (r.delta or 0.0) * (1 if r.rule.worse == "higher" else -1)
        sig = r.significant(gate.alpha)
        if sig and worse_by > r.rule.max_drop:
            r.verdict = "regression" if r.rule.enforce else "regression (not enforced)"
        elif sig and worse_by > 0:
            r.verdict = "worse, within threshold"
        elif sig and worse_by < 0:
            r.verdict = "improved"
        else:
            r.verdict = "no significant change"
    if not gate.enforced:  # bare statistics: nothing fails
        for r in comp.rows:
            if r.verdict == "regression":
                r.verdict = "worse"


def _fill(row: RowDelta, paired: PairedTask, tb: dict[str, Any], tn: dict[str, Any], gate: Gate) -> None:
    metric = row.metric
    row.unpaired = (paired.only_base, paired.only_new)
    if metric not in tb["metrics"] or metric not in tn["metrics"]:
        row.status, row.reason = "not comparable", f"{row.task}: metric {metric!r} is missing from one run"
        return
    seed = [gate.seed, zlib.crc32(row.key.encode())]  # per row: results do not depend on row order
    mode = _per_sample_mode(paired, tb, tn, metric)
    try:
        if mode is not None:
            _per_sample(row, paired, metric, mode, gate, seed)
        else:
            _recomputed(row, paired, tb, tn, gate, seed)
    except NotTestable as e:
        row.status, row.reason = "not testable", f"{row.task}: {e}"


def _scores(records: list[Record], metric: str) -> list[float | None]:
    out = []
    for r in records:
        v = (r.get("scores") or {}).get(metric)
        out.append(None if v is None else float(v))
    return out


def _per_sample_mode(paired: PairedTask, tb: dict[str, Any], tn: dict[str, Any], metric: str) -> str | None:
    """"micro" or "macro" when the recorded value is that average of the per-sample scores
    in both runs (then the per-sample tests apply), else None."""
    recorded_mode = metric_aggregate(tb, metric)
    modes = [recorded_mode] if recorded_mode else ["micro", "macro"]
    for mode in modes:
        ok = True
        for records, tr in ((paired.base_all, tb), (paired.new_all, tn)):
            values = _scores(records, metric)
            recorded = tr["metrics"][metric]["value"]
            if all(v is None for v in values) or recorded is None:
                return None
            got = from_per_sample(records, values, mode).value
            ok &= math.isclose(got, recorded, rel_tol=1e-9, abs_tol=1e-12)
        if ok:
            return mode
    return None


def _per_sample(row: RowDelta, paired: PairedTask, metric: str, mode: str, gate: Gate, seed: list[int]) -> None:
    b_all, n_all = _scores(paired.base, metric), _scores(paired.new, metric)
    keep = [i for i, (b, n) in enumerate(zip(b_all, n_all)) if b is not None and n is not None]
    if not keep:
        raise NotTestable(f"no item has a {metric} score in both runs")
    b = np.array([b_all[i] for i in keep])
    n = np.array([n_all[i] for i in keep])
    groups = [str(paired.base[i].get("group", "")) for i in keep]
    macro = mode == "macro" and len(set(groups)) > 1
    strata = groups if macro else None
    ci = paired_bootstrap(b, n, strata=strata, resamples=gate.resamples, confidence=gate.confidence, seed=seed)
    row.test, row.p, row.resamples = "paired bootstrap" + (" (stratified by group)" if macro else ""), ci.p, ci.resamples
    if is_binary(b, n) and not macro:
        mc = mcnemar_exact(b, n)
        row.test, row.p, row.discordant = "McNemar exact", mc.p, (mc.down, mc.up)
    s = row.scale
    base_v = from_per_sample([paired.base[i] for i in keep], list(b), mode).value
    new_v = from_per_sample([paired.new[i] for i in keep], list(n), mode).value
    row.base, row.new, row.n = base_v * s, new_v * s, len(keep)
    row.delta, row.low, row.high = ci.delta * s, ci.low * s, ci.high * s
    row.flips = _flips(paired, keep, b, n, row.higher_is_better)


def _recomputed(row: RowDelta, paired: PairedTask, tb: dict[str, Any], tn: dict[str, Any], gate: Gate, seed: list[int]) -> None:
    f_base = metric_function(tb, row.metric)
    f_new = metric_function(tn, row.metric)
    check_reproduces(f_base, paired.base_all, tb["metrics"][row.metric]["value"], row.metric)
    check_reproduces(f_new, paired.new_all, tn["metrics"][row.metric]["value"], row.metric)
    base, new = paired.base, paired.new

    def delta_of(idx: np.ndarray) -> float:
        try:
            return f_new([new[i] for i in idx]) - f_base([base[i] for i in idx])
        except (ZeroDivisionError, ValueError, FloatingPointError):  # a resample the metric is undefined on
            return math.nan

    t0 = time.perf_counter()
    base_v, new_v = f_base(base), f_new(new)
    per_resample = max(time.perf_counter() - t0, 1e-6)
    # Some metrics are slow to recompute (one bootstraps its own stderr on every call):
    # fewer resamples within the time budget, and below 1,000 no test at all.
    resamples = min(gate.resamples, int(gate.recompute_budget_s / per_resample))
    if resamples < 1000:
        raise NotTestable(f"recomputing {row.metric} takes {per_resample:.2f} s per resample; 1,000 resamples would "
                          f"exceed gate.recompute_budget_s={gate.recompute_budget_s:g}")
    ci = recomputed_bootstrap(len(base), delta_of, resamples=resamples, confidence=gate.confidence, seed=seed)
    s = row.scale
    row.test = "paired bootstrap (metric recomputed per resample" + (
        f", {resamples:,} resamples within the time budget)" if resamples < gate.resamples else ")")
    row.p, row.resamples, row.n = ci.p, ci.resamples, len(base)
    row.base, row.new = base_v * s, new_v * s
    row.delta, row.low, row.high = ci.delta * s, ci.low * s, ci.high * s


def _flips(paired: PairedTask, keep: list[int], b: np.ndarray, n: np.ndarray, higher_is_better: bool) -> dict[str, Any]:
    """Items whose score changed, worst changes first, split into worse and better."""
    diff = (n - b) * (1 if higher_is_better else -1)  # > 0: better
    out: dict[str, Any] = {}
    for side, mask in (("worse", diff < 0), ("better", diff > 0)):
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(-np.abs(diff[idx]), kind="stable")]
        out[side] = {
            "count": int(idx.size),
            "items": [{"id": paired.ids[keep[j]], "base_score": float(b[j]), "new_score": float(n[j]),
                       "base": paired.base[keep[j]], "new": paired.new[keep[j]]} for j in idx[:MAX_FLIPS]],
        }
    return out


def compare_all(results: list[dict[str, Any]], gate: Gate) -> list[Comparison]:
    """Compare every run after the first with the first (labels as in the report)."""
    labels = column_labels(results)
    return [compare_runs(results[0], res, gate, labels=(labels[0], label))
            for res, label in zip(results[1:], labels[1:])]
