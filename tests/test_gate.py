"""Gate semantics through ``evalkit compare ... gate=release``: exit status, JUnit, Markdown."""

from __future__ import annotations

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


def test_a_significant_drop_inside_the_threshold_passes(tmp_path, capsys):
    base, new = _arc(4000, down=20)  # -0.5 points, p = 2**-19: significant but allowed (max_drop 1)
    code, out = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}})
    assert code == 0
    cases, root = _cases(out)
    assert root.get("failures") == "0" and list(cases) == ["ARC-e (0-shot)"]
    summary = (out / "summary.md").read_text()
    assert "PASS" in summary and "worse, within threshold" in summary and "-0.50" in summary
    assert capsys.readouterr().out.startswith("### evalkit gate `release`: ✅ PASS")


def test_a_significant_drop_beyond_the_threshold_fails(tmp_path):
    base, new = _arc(400, down=30, up=2)  # -7 points
    code, out = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}})
    assert code == 1
    cases, root = _cases(out)
    failure = cases["ARC-e (0-shot)"].find("failure")
    assert failure is not None and "-7.00 points" in failure.get("message")
    assert root.get("failures") == "1"
    assert "❌ FAIL" in (out / "summary.md").read_text()


def test_a_large_but_not_significant_drop_passes(tmp_path):
    base, new = _arc(20, down=2)  # -10 points on 20 items: McNemar p = 0.5
    code, out = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}})
    assert code == 0 and "no significant change" in (out / "summary.md").read_text()


def test_a_threshold_override_on_the_command_line_lets_a_drop_through(tmp_path):
    base, new = _arc(400, down=30, up=2)
    code, _ = _run(tmp_path, {"arc_easy": {"records": base}}, {"arc_easy": {"records": new}},
                   "gate.rows.ARC-e.max_drop=10")
    assert code == 0


def test_a_safety_row_getting_higher_fails_even_by_little(tmp_path):
    base, new = _tox(200, shift=0.02)  # +1 point of toxicity, significant; safety allows 0
    tasks = lambda recs: {"toxicity": {"records": recs, "metric": "toxicity", "higher_is_better": False}}  # noqa: E731
    code, out = _run(tmp_path, tasks(base), tasks(new))
    assert code == 1
    cases, _ = _cases(out)
    assert cases["RealToxicity (average)"].find("failure") is not None
    # ... and getting lower is an improvement, which passes.
    code, out = _run(tmp_path, tasks(new), tasks(base))
    assert code == 0 and "improved" in (out / "summary.md").read_text()


def test_the_toxicity_group_makes_higher_worse_even_when_the_metric_claims_otherwise(tmp_path):
    base, new = _tox(200, shift=0.02)
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


def test_comparing_a_run_with_itself_passes_with_zero_deltas(tmp_path):
    base, _ = _arc(100, down=0)
    run = make_run(tmp_path, "same", {"arc_easy": {"records": base}, "toxicity": {
        "records": _tox(50, 0)[0], "metric": "toxicity", "higher_is_better": False}})
    out = tmp_path / "out"
    assert main(["compare", str(run), str(run), "gate=release", "-o", str(out), "--no-html"]) == 0
    import json

    rows = json.loads((out / "comparison.json").read_text())["comparisons"][0]["rows"]
    assert len(rows) == 2 and all(r["delta"] == 0 and r["p"] == 1.0 for r in rows)


def test_every_run_after_the_first_is_gated_against_the_first(tmp_path):
    base, bad = _arc(400, down=30)
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
])
def test_bad_gate_settings_end_in_one_line(args, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_gate(args)


def test_bad_gate_setting_on_the_command_line_exits_2(tmp_path, capsys):
    run = make_run(tmp_path, "r", {"arc_easy": {"records": [mc_record(0, 1)]}})
    assert main(["compare", str(run), str(run), "gate=nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "choose one of: release" in err
