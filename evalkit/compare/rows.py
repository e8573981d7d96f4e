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

Values, deltas and intervals are on the card's scale (points). Under a gate each row is
a non-inferiority test against its allowed drop (``gate_verdicts``): it passes only when
the data show the drop is smaller than allowed, fails when they show it is larger, and is
inconclusive otherwise, with the number of items that would settle it.
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
from evalkit.compare.stats import (bootstrap_margin_p, holm, is_binary, items_needed, mcnemar_exact, paired_bootstrap,
                                   recomputed_bootstrap, tango_interval, tango_margin_p, unmoved_margin_p)
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
    status: str = "ok"  # ok | missing | not comparable | not testable
    reason: str = ""
    base: float | None = None  # on the paired items
    new: float | None = None
    n: int = 0  # paired items with a score in both runs
    base_n: int = 0  # items the base run holds for this row: coverage is n of base_n
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
    # Non-inferiority at the rule's allowed drop (one-sided): small p_within shows the row
    # got worse by less than allowed; small p_beyond (Holm-adjusted) by more.
    p_within: float | None = None
    p_beyond: float | None = None
    p_beyond_holm: float | None = None
    needed: int | None = None  # paired items that would likely settle an inconclusive row
    verdict: str = ""  # set by gate_verdicts
    blocking: bool = False  # this row fails the gate

    @property
    def partial(self) -> bool:
        """Compared on fewer items than the base run holds for the row."""
        return self.status == "ok" and self.n < self.base_n

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
        return [r for r in self.rows if r.blocking]

    @property
    def passed(self) -> bool:
        return not self.failed


def compare_runs(base: dict[str, Any], new: dict[str, Any], gate: Gate, labels: tuple[str, str] | None = None) -> Comparison:
    """Compare run ``new`` with run ``base`` (both ``load_results`` dicts)."""
    rows: list[RowDelta] = []
    for task, tb in base["tasks"].items():
        tn = new["tasks"].get(task)
        paired: PairedTask | None = None
        if tn is None:
            reason = f"{task}: not in {new['run_dir']} (the new run did not run this task)"
        else:
            try:
                paired, reason = pair_task(base, new, task), ""
            except NotComparable as e:
                reason = str(e)
        for spec in row_entries(task, tb):
            hib = bool(tb.get("higher_is_better", {}).get(spec["metric"], True))
            row = RowDelta(spec["table"], spec["row"], spec["label"], task, spec["metric"], float(spec["scale"]), hib)
            row.rule = gate.rule_for(row.table, row.row, task, hib)
            row.base_n = int((tb["metrics"].get(spec["metric"]) or {}).get("n") or tb.get("n") or 0)
            if tn is None:
                row.status, row.reason = "missing", reason
            elif paired is None:
                row.status, row.reason = "not comparable", reason
            else:
                _fill(row, paired, tb, tn, gate)
            rows.append(row)
    rows.sort(key=lambda r: (*card_position(r.table, r.row), r.row))  # the card's order, as in the report
    # Holm on the two-sided "no change" p-values: which changes the report colours as real.
    for r, p in zip(rows, holm([_p(r.p, r) for r in rows])):
        r.p_holm = None if math.isnan(p) else p
    # Holm on "worse beyond the allowed drop": a FAIL claims at least one row regressed, so
    # the chance of failing a good release somewhere among the rows is what must stay at
    # alpha. Holm is not applied to the "within the allowed drop" tests: the gate passes
    # only when every row passes (an intersection-union test), which is already at level
    # alpha with each row at alpha; adjusting would only make passing harder for nothing.
    enforced = [r.rule is not None and r.rule.enforce for r in rows]
    for r, p in zip(rows, holm([_p(r.p_beyond, r) if e else math.nan for r, e in zip(rows, enforced)])):
        r.p_beyond_holm = r.p_beyond if math.isnan(p) else p
    base_label, new_label = labels or (base["run_dir"], new["run_dir"])
    comp = Comparison(base["run_dir"], new["run_dir"], base_label, new_label, rows,
                      sorted(set(base["tasks"]) - set(new["tasks"])), sorted(set(new["tasks"]) - set(base["tasks"])), gate)
    gate_verdicts(comp)
    return comp


def _p(p: float | None, r: RowDelta) -> float:
    return p if r.status == "ok" and p is not None and not math.isnan(p) else math.nan


def gate_verdicts(comp: Comparison) -> None:
    """Each row's verdict, as a non-inferiority test at its allowed drop (``max_drop``):

    * ``regression``: worse by more than allowed, significant at alpha after Holm;
    * ``pass``: the data show it got worse by less than allowed (one-sided p < alpha,
      i.e. the interval's worse end lies inside the allowed drop when alpha matches it);
    * ``inconclusive``: neither; ``needed`` says about how many paired items would settle it.

    A row that is missing from the new run, not testable, or paired on fewer items than
    the base run holds is a verdict of its own; ``gate.policy`` says which of these (and
    inconclusive rows) block the release. An incomparable row always blocks.
    """
    gate = comp.gate
    for r in comp.rows:
        rule = r.rule
        if r.status != "ok":
            r.verdict = r.status
        elif r.p_beyond_holm is not None and r.p_beyond_holm < gate.alpha:
            r.verdict = "regression"
        elif r.p_within is not None and r.p_within < gate.alpha:
            r.verdict = "pass"
        else:
            r.verdict = "inconclusive"
        if r.partial and r.verdict != "regression" and gate.policy["partial"] == "fail":
            r.verdict = "partial coverage"
            r.reason = r.reason or (f"{r.task}: paired on {r.n} of the {r.base_n} items the base run holds "
                                    f"({r.unpaired[0]} not in the new run or not scored there)")
        r.blocking = gate.enforced and bool(rule is None or rule.enforce) and _blocks(r.verdict, gate.policy)
        if rule is not None and not rule.enforce and r.verdict in ("regression", "inconclusive"):
            r.verdict += " (not enforced)"
    if not gate.enforced:  # bare statistics: nothing fails
        for r in comp.rows:
            if r.verdict == "regression":
                r.verdict = "worse"


def _blocks(verdict: str, policy: dict[str, str]) -> bool:
    key = {"inconclusive": "inconclusive", "missing": "missing", "not testable": "not_testable",
           "partial coverage": "partial"}.get(verdict)
    if key is not None:
        return policy[key] == "fail"
    return verdict in ("regression", "not comparable")


def _fill(row: RowDelta, paired: PairedTask, tb: dict[str, Any], tn: dict[str, Any], gate: Gate) -> None:
    metric = row.metric
    row.unpaired = (paired.only_base, paired.only_new)
    if metric not in tb["metrics"] or metric not in tn["metrics"]:
        row.status, row.reason = "missing", f"{row.task}: metric {metric!r} is missing from one run"
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
    row.base_n = sum(v is not None for v in _scores(paired.base_all, metric))
    if not keep:
        raise NotTestable(f"no item has a {metric} score in both runs")
    b = np.array([b_all[i] for i in keep])
    n = np.array([n_all[i] for i in keep])
    groups = [str(paired.base[i].get("group", "")) for i in keep]
    macro = mode == "macro" and len(set(groups)) > 1
    sign = _worse_sign(row)
    margin = row.rule.max_drop / row.scale if row.rule else 0.0
    binary = is_binary(b, n)
    mc = mcnemar_exact(b, n) if binary else None
    unmoved = np.ptp(n - b) == 0
    if binary and (not macro or unmoved):
        # Paired 0/1 scores: Tango's score interval and test, which stay honest when few or
        # no items changed (a bootstrap of an unchanged row has zero width). A macro average
        # over groups with no changed item is the pooled one too (every difference is 0).
        worse_n, better_n = (mc.down, mc.up) if sign < 0 else (mc.up, mc.down)
        k = len(keep)
        lo, hi = tango_interval(worse_n, better_n, k, gate.confidence)
        row.delta = float((n - b).mean())
        row.low, row.high = (-hi, -lo) if sign < 0 else (lo, hi)
        row.p_within, row.p_beyond = tango_margin_p(worse_n, better_n, k, margin)
        row.test, row.p, row.discordant, row.resamples = "McNemar exact; Tango score interval", mc.p, (mc.down, mc.up), 0
    else:
        strata = groups if macro else None
        ci = paired_bootstrap(b, n, strata=strata, resamples=gate.resamples, confidence=gate.confidence, seed=seed)
        row.test, row.p, row.resamples = "paired bootstrap" + (" (stratified by group)" if macro else ""), ci.p, ci.resamples
        row.delta, row.low, row.high = ci.delta, ci.low, ci.high
        if mc is not None:
            row.p, row.discordant = mc.p, (mc.down, mc.up)
        if ci.dist is None:  # every item moved by the same amount: bound what could change unseen
            row.p_within, row.p_beyond = unmoved_margin_p(sign * ci.delta, len(keep), margin, _score_range(b, n))
        else:
            row.p_within, row.p_beyond = bootstrap_margin_p(sign * ci.dist, margin)
    row.needed = items_needed(sign * row.delta, float(np.var(n - b)), margin, gate.alpha, binary=binary,
                              score_range=_score_range(b, n))
    s = row.scale
    base_v = from_per_sample([paired.base[i] for i in keep], list(b), mode).value
    new_v = from_per_sample([paired.new[i] for i in keep], list(n), mode).value
    row.base, row.new, row.n = base_v * s, new_v * s, len(keep)
    row.delta, row.low, row.high = row.delta * s, row.low * s, row.high * s
    row.flips = _flips(paired, keep, b, n, row.higher_is_better)


def _worse_sign(row: RowDelta) -> int:
    """+1 when a higher value is worse for this row, -1 when a lower one is."""
    worse = row.rule.worse if row.rule else ("lower" if row.higher_is_better else "higher")
    return 1 if worse == "higher" else -1


def _score_range(*arrays: np.ndarray) -> float:
    """How far one item's score can move: 1 for scores in [0, 1]; unknown (inf) otherwise."""
    return 1.0 if all(((a >= 0) & (a <= 1)).all() for a in arrays) else math.inf


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
    sign, margin = _worse_sign(row), (row.rule.max_drop / row.scale if row.rule else 0.0)
    row.base_n = len(paired.base_all)
    if ci.dist is not None:
        row.p_within, row.p_beyond = bootstrap_margin_p(sign * ci.dist, margin)
        spread = float(np.var(ci.dist)) * len(base)  # per-item variance implied by the bootstrap's
        row.needed = items_needed(sign * ci.delta, spread, margin, gate.alpha, score_range=math.inf)
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
