"""Row-by-row comparison of run folders: pairing, refusals, the test chosen per row."""

from __future__ import annotations

import random

import pytest

from evalkit.compare.gate import no_gate
from evalkit.compare.rows import compare_runs
from evalkit.metrics.registry import METRICS, MetricResult, metric
from evalkit.rundir import load_results
from tests.test_compare_fixtures import gen_record, make_run, mc_record

_RATIO = "test_stereotype_ratio"
if _RATIO not in METRICS:
    @metric(_RATIO, higher_is_better=False)
    def _ratio(records, field: str = "stereo", aggregate: str = "micro", **_):
        """An aggregate-only metric (no per-sample values), like a bias score."""
        hits = [r[field] for r in records if r.get(field) is not None]
        return MetricResult(sum(hits) / len(hits), None, len(hits))


def _compare(tmp_path, base_tasks, new_tasks, **settings):
    a = load_results(make_run(tmp_path, "base", base_tasks))
    b = load_results(make_run(tmp_path, "new", new_tasks))
    return compare_runs(a, b, no_gate(**settings))


def test_items_are_paired_by_id_whatever_their_order_and_extra_items_are_counted(tmp_path):
    base = [mc_record(i, 1) for i in range(60)]
    new = [mc_record(i, 0 if i < 20 else 1) for i in range(70)]  # 10 more items, 20 got worse
    random.Random(0).shuffle(new)
    (row,) = _compare(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}}).rows
    assert row.status == "ok" and row.n == 60 and row.unpaired == (0, 10)
    assert row.test == "McNemar exact; Tango score interval" and row.discordant == (20, 0)
    assert row.base == pytest.approx(100.0) and row.new == pytest.approx(40 / 60 * 100)
    assert row.delta == pytest.approx(-20 / 60 * 100) and row.low <= row.delta <= row.high < 0
    assert row.p == pytest.approx(2 * 0.5**20)  # all 20 discordant pairs one way
    assert row.flips["worse"]["count"] == 20 and row.flips["better"]["count"] == 0


def test_different_task_hash_is_refused_with_one_line(tmp_path):
    recs = [mc_record(i, 1) for i in range(5)]
    comp = _compare(tmp_path, {"arc_easy": {"records": recs}}, {"arc_easy": {"records": recs, "hash": "other"}})
    (row,) = comp.rows
    assert row.status == "not comparable" and "task hashes differ" in row.reason and "\n" not in row.reason


def test_same_id_with_different_data_is_refused(tmp_path):
    new = [mc_record(i, 1) for i in range(5)]
    new[2]["doc"] = {"question": "something else"}
    (row,) = _compare(tmp_path, {"arc_easy": {"records": [mc_record(i, 1) for i in range(5)]}},
                      {"arc_easy": {"records": new}}).rows
    assert row.status == "not comparable" and "'q2'" in row.reason


def test_continuous_scores_use_the_paired_bootstrap_on_the_card_scale(tmp_path):
    base = [gen_record(i, 0.10, "ok") for i in range(50)]
    new = [gen_record(i, 0.10 + (0.2 if i % 2 else 0.0), "hm") for i in range(50)]
    (row,) = _compare(tmp_path, {"toxicity": {"records": base, "metric": "toxicity", "higher_is_better": False}},
                      {"toxicity": {"records": new, "metric": "toxicity", "higher_is_better": False}},
                      resamples=2000).rows
    assert row.test == "paired bootstrap" and row.discordant is None and row.resamples == 2000
    assert row.delta == pytest.approx(10.0) and 0 < row.low < 10 < row.high  # points: +0.1 -> +10
    assert row.flips["worse"]["count"] == 25  # lower is better: the increases are the worse items


def test_macro_rows_are_bootstrapped_within_groups(tmp_path):
    base = [mc_record(i, 1, group="g1") for i in range(30)] + [mc_record(i, 1, group="g2") for i in range(10)]
    new = [mc_record(i, 0 if i < 15 else 1, group="g1") for i in range(30)] + [mc_record(i, 1, group="g2") for i in range(10)]
    (row,) = _compare(tmp_path, {"mmlu": {"records": base, "aggregate": "macro", "value": 1.0}},
                      {"mmlu": {"records": new, "aggregate": "macro", "value": 0.75}}, resamples=2000).rows
    assert row.test.startswith("paired bootstrap (stratified") and row.delta == pytest.approx(-25.0)


def test_aggregate_only_metric_is_recomputed_per_resample_or_reported_not_testable(tmp_path):
    def recs(share):
        return [{"id": f"b{i}", "group": "", "doc": {"i": i}, "prompt": "p", "stereo": int(i < share), "scores": {}}
                for i in range(100)]

    specs = [{"name": _RATIO, "field": "stereo"}]
    base = {"bbq": {"records": recs(30), "metric": _RATIO, "value": 0.30, "higher_is_better": False,
                    "metric_specs": specs}}
    new = {"bbq": {"records": recs(60), "metric": _RATIO, "value": 0.60, "higher_is_better": False,
                   "metric_specs": specs}}
    (row,) = _compare(tmp_path, base, new, resamples=1000).rows
    assert row.status == "ok" and row.test.startswith("paired bootstrap (metric recomputed")
    assert row.delta == pytest.approx(30.0) and row.low > 0 and row.p < 0.01

    # A metric too slow to recompute within the time budget is not tested, and says why.
    (row,) = _compare(tmp_path, base, new, recompute_budget_s=1e-4).rows
    assert row.status == "not testable" and "recompute_budget_s" in row.reason

    for t in (base, new):
        del t["bbq"]["metric_specs"]
    (row,) = _compare(tmp_path, base, new).rows
    assert row.status == "not testable" and "does not record" in row.reason


def test_tasks_without_a_card_row_are_compared_on_their_primary_metric(tmp_path):
    recs = [mc_record(i, i % 2) for i in range(10)]
    comp = _compare(tmp_path, {"my_task": {"records": recs, "card": {}}, "arc_easy": {"records": recs}},
                    {"my_task": {"records": recs, "card": {}}})
    missing, row = comp.rows  # the card's order: ARC-e first, then "other" rows
    assert (missing.row, missing.status, missing.base_n) == ("ARC-e", "missing", 10)
    assert (row.table, row.row, row.metric) == ("other", "my_task", "acc")
    assert comp.only_base == ["arc_easy"] and row.delta == 0 and row.p == 1.0
