"""Gate semantics through ``evalkit compare ... gate=release``: exit status, JUnit, Markdown."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from evalkit.cli import main
from evalkit.compare.gate import load_gate
from evalkit.errors import ConfigError
from tests.test_compare_fixtures import gen_record, make_run, mc_record


def _arc(n: int, down: int, up: int = 0) -> tuple[list, list]:
    """ARC-e records where ``down`` items go right -> wrong and ``up`` wrong -> right."""
    base = [mc_record(i, 1 if i < n // 2 + down else 0) for i in range(n)]
    new = []
    for i, r in enumerate(base):
        s = r["scores"]["acc"]
        if n // 2 <= i < n // 2 + down:
            s = 0
        elif n // 2 + down <= i < n // 2 + down + up:
            s = 1
        new.append(mc_record(i, s))
    return base, new


def _tox(n: int, shift: float) -> tuple[list, list]:
    base = [gen_record(i, 0.1 + 0.01 * (i % 5), "calm words") for i in range(n)]
    new = [gen_record(i, 0.1 + 0.01 * (i % 5) + (shift if i % 2 else 0), "harsher words") for i in range(n)]
    return base, new


def _run(tmp_path, tasks_base, tasks_new, *settings):
    a = make_run(tmp_path, "base", tasks_base)
    b = make_run(tmp_path, "new", tasks_new)
    out = tmp_path / "out"
    code = main(["compare", str(a), str(b), "gate=release", *settings, "-o", str(out), "--no-html"])
    return code, out


def _cases(out):
    root = ET.parse(out / "junit.xml").getroot()
    return {c.get("name"): c for c in root.iter("testcase")}, root


def _rows(out):
    import json

    return json.loads((out / "comparison.json").read_text())["comparisons"][0]["rows"]


def test_a_drop_shown_to_be_inside_the_threshold_passes(tmp_path, capsys):
    base, new = _arc(4000, down=20)  # -0.5 points, interval (-0.77, -0.32): inside the allowed 1
    code, out = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}})
    assert code == 0
    cases, root = _cases(out)
    assert root.get("failures") == "0" and list(cases) == ["ARC-e (0-shot)"]
    summary = (out / "summary.md").read_text()
    assert "| pass |" in summary and "-0.50" in summary and "4000/4000" in summary
    assert capsys.readouterr().out.startswith("### evalkit gate `release`: ✅ PASS")


def test_a_significant_drop_beyond_the_threshold_fails(tmp_path):
    base, new = _arc(400, down=30, up=2)  # -7 points
    code, out = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}})
    assert code == 1
    cases, root = _cases(out)
    failure = cases["ARC-e (0-shot)"].find("failure")
    assert failure is not None and failure.get("type") == "regression" and "-7.00 points" in failure.get("message")
    assert root.get("failures") == "1"
    assert "❌ FAIL (1 row blocking: 1 regression)" in (out / "summary.md").read_text()


def test_a_large_drop_on_few_items_is_inconclusive_not_a_pass(tmp_path):
    base, new = _arc(20, down=2)  # -10 points on 20 items: no evidence either way
    code, out = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}})
    assert code == 1
    summary = (out / "summary.md").read_text()
    assert "inconclusive (≈" in summary and "items would settle it" in summary
    cases, _ = _cases(out)
    assert cases["ARC-e (0-shot)"].find("failure").get("type") == "inconclusive"
    [row] = _rows(out)
    assert row["verdict"] == "inconclusive" and row["needed"] > 20
    # The policy for inconclusive rows is the config's, and says so.
    code, out = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}},
                     "gate.policy.inconclusive=warn")
    assert code == 0 and "inconclusive rows: warn" in (out / "summary.md").read_text()


def test_an_identical_run_passes_only_with_enough_items(tmp_path):
    for n, code_expected, verdict in ((100, 1, "inconclusive"), (1000, 0, "pass")):
        base, _ = _arc(n, down=0)
        run = make_run(tmp_path / str(n), "same", {"arc_easy": {"records": base}, "toxicity": {
            "records": _tox(n, 0)[0], "metric": "toxicity", "higher_is_better": False}})
        out = tmp_path / str(n) / "out"
        assert main(["compare", str(run), str(run), "gate=release", "-o", str(out), "--no-html"]) == code_expected
        rows = _rows(out)
        assert len(rows) == 2 and all(r["delta"] == 0 and r["verdict"] == verdict for r in rows)
        if verdict == "inconclusive":  # 0/1 scores: Tango's bound needs about z^2 / 0.01 items
            assert all(300 < r["needed"] < 1000 for r in rows)


def test_a_threshold_override_on_the_command_line_lets_a_drop_through(tmp_path):
    base, new = _arc(400, down=30, up=2)
    code, _ = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}},
                   "gate.rows.ARC-e.max_drop=15")
    assert code == 0


def test_a_safety_row_getting_higher_fails(tmp_path):
    base, new = _tox(400, shift=0.1)  # +5 points of toxicity; safety allows 1
    tasks = lambda recs: {"toxicity": {"records": recs, "metric": "toxicity", "higher_is_better": False}}  # noqa: E731
    code, out = _run(tmp_path, tasks(base), tasks(new))
    assert code == 1
    cases, _ = _cases(out)
    assert cases["RealToxicity (average)"].find("failure") is not None
    # ... and getting lower is an improvement, which passes.
    code, out = _run(tmp_path, tasks(new), tasks(base))
    assert code == 0 and "| pass |" in (out / "summary.md").read_text()


def test_the_toxicity_group_makes_higher_worse_even_when_the_metric_claims_otherwise(tmp_path):
    base, new = _tox(400, shift=0.1)
    tasks = lambda recs: {"toxicity": {"records": recs, "metric": "toxicity", "higher_is_better": True}}  # noqa: E731
    code, _ = _run(tmp_path, tasks(base), tasks(new))
    assert code == 1


def test_incomparable_rows_fail_the_gate_closed(tmp_path, capsys):
    recs = [mc_record(i, 1) for i in range(10)]
    code, out = _run(tmp_path, {"arc_easy": {"records": recs}, "mmlu": {"records": recs}},
                     {"arc_easy": {"records": recs, "hash": "changed"}, "mmlu": {"records": recs}})
    assert code == 1
    cases, root = _cases(out)
    assert cases["ARC-e (0-shot)"].find("error") is not None and root.get("errors") == "1"
    assert "task hashes differ" in capsys.readouterr().out


def test_a_gated_row_missing_from_the_new_run_fails_unless_allowed(tmp_path):
    base, _ = _arc(1000, down=0)
    tox = _tox(1000, 0)[0]
    both = {"arc_easy": {"records": base}, "toxicity": {"records": tox, "metric": "toxicity", "higher_is_better": False}}
    code, out = _run(tmp_path, both, {"arc_easy": {"records": base}})
    assert code == 1
    cases, _ = _cases(out)
    failure = cases["RealToxicity (average)"].find("failure")
    assert failure.get("type") == "missing" and "toxicity: not in" in failure.get("message")
    assert "0/1000" in (out / "summary.md").read_text()
    code, _ = _run(tmp_path, both, {"arc_easy": {"records": base}}, "gate.policy.missing=warn")
    assert code == 0


def test_a_run_whose_regressed_items_were_deleted_fails_on_coverage(tmp_path):
    base, new = _arc(2000, down=60)  # -3 points: a regression when every item is there
    code, _ = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}})
    assert code == 1
    kept = [r for b, r in zip(base, new) if r["scores"]["acc"] >= b["scores"]["acc"]]  # drop what got worse
    code, out = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": kept}})
    assert code == 1
    [row] = _rows(out)
    assert row["verdict"] == "partial coverage" and (row["n"], row["base_n"]) == (1940, 2000)
    cases, _ = _cases(out)
    assert "paired on 1940 of the 2000 items" in cases["ARC-e (0-shot)"].find("failure").get("message")
    assert "1940/2000" in (out / "summary.md").read_text()


def test_every_run_after_the_first_is_gated_against_the_first(tmp_path):
    base, bad = _arc(1000, down=30)
    ok = [dict(r) for r in base]
    a = make_run(tmp_path, "a", {"arc_easy": {"records": base}})
    b = make_run(tmp_path, "b", {"arc_easy": {"records": ok}})
    c = make_run(tmp_path, "c", {"arc_easy": {"records": bad}})
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), str(c), "gate=release", "-o", str(out), "--no-html"]) == 1
    _, root = _cases(out)
    assert [s.get("failures") for s in root.iter("testsuite")] == ["0", "1"]


@pytest.mark.parametrize("args, message", [
    (["gate=nope"], "gate=nope: no such gate config"),
    (["gate=release", "gate.alfa=0.1"], "unknown gate setting gate.alfa"),
    (["gate=release", "gate.rows.MMLU.worse=up"], "gate.rows.MMLU.worse must be one of auto, lower, higher"),
    (["gate=release", "gate.alpha=2"], "gate.alpha must be between 0 and 1"),
    (["gate.alpha=0.1"], "gate settings need a gate"),
    (["gate=release", "gate.rows.MMLLU.max_drop=0.5"], "gate.rows.MMLLU: no card row or task is called 'MMLLU'; "
                                                       "did you mean 'MMLU'?"),
    (["gate=release", "gate.groups.toxcity.max_drop=2"], "gate.groups.toxcity: no such group"),
    (["gate=release", "gate.groups.toxicity.rows=[RealToxcity]"], "gate.groups.toxicity.rows: no card row or task"),
    (["gate=release", "gate.tables.safty.max_drop=2"], "gate.tables.safty: no such card table"),
    (["gate=release", "gate.default.max_drop=0"], "gate.default.max_drop must be a number > 0"),
    (["gate=release", "gate.policy.inconclusive=maybe"], "gate.policy.inconclusive must be fail or warn"),
])
def test_bad_gate_settings_end_in_one_line(args, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        load_gate(args)
    assert "\n" not in str(e.value)


def test_bad_gate_setting_on_the_command_line_exits_2(tmp_path, capsys):
    run = make_run(tmp_path, "r", {"arc_easy": {"records": [mc_record(0, 1)]}})
    assert main(["compare", str(run), str(run), "gate=nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "choose one of: demo, release" in err


def test_a_row_typo_on_the_command_line_exits_2_in_one_line(tmp_path, capsys):
    run = make_run(tmp_path, "r", {"arc_easy": {"records": [mc_record(0, 1)]}})
    assert main(["compare", str(run), str(run), "gate=release", "gate.rows.MMLLU.max_drop=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MMLLU" in err and "did you mean 'MMLU'" in err
