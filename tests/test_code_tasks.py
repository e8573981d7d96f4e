"""HumanEval and MBPP: pass@k, the code_exec judge, the task specs, and a run end to end."""

from __future__ import annotations

from collections import Counter

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import comb

from evalkit.errors import ConfigError
from evalkit.files import read_jsonl
from evalkit.judges import JUDGES, check_judge, run_judge
from evalkit.judges.code_exec import programs
from evalkit.metrics import compute_metrics
from evalkit.metrics.code import estimate_pass_at_k
from evalkit.hydra_checks import compose_config
from evalkit.sandbox import OUTCOMES
from evalkit.tasks import build_samples, load_task
from tests.conftest import run_config

ON = {"sandbox": {"allow_code_execution": True, "workers": 2, "limits": {"cpu_seconds": 1, "wall_seconds": 10}}}


# -- pass@k ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n, c, k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (20, 1, 10), (200, 13, 10),
                                     (10, 10, 10), (12, 2, 11)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k):
    expected = 1.0 - comb(n - c, k, exact=True) / comb(n, k, exact=True)
    assert math.isclose(estimate_pass_at_k(n, c, k), expected, rel_tol=1e-12, abs_tol=1e-12)


def _records(passes: list[list[bool]]) -> list[dict]:
    return [{"id": str(i), "group": "", "executions": [{"outcome": "passed" if p else "failed"} for p in row]}
            for i, row in enumerate(passes)]


def test_pass_at_k_metric_per_problem_values_and_stderr():
    recs = _records([[True], [False], [True], [True]])
    res = compute_metrics(recs, [{"name": "pass_at_k", "as": "pass@1", "k": 1},
                                 {"name": "pass_at_k", "as": "pass@10", "k": 10}])
    p1 = res["pass@1"]
    assert p1.value == 0.75 and p1.n == 4 and p1.per_sample == [1.0, 0.0, 1.0, 1.0]
    assert math.isclose(p1.stderr, np.std([1, 0, 1, 1], ddof=1) / 2)
    assert [r["scores"]["pass@1"] for r in recs] == [1.0, 0.0, 1.0, 1.0]  # for paired comparisons
    assert "pass@10" not in res and all("pass@10" not in r["scores"] for r in recs)  # undefined with n = 1: no row
    sampled = _records([[True] * 3 + [False] * 7, [False] * 10])
    res = compute_metrics(sampled, [{"name": "pass_at_k", "as": "pass@1", "k": 1},
                                    {"name": "pass_at_k", "as": "pass@10", "k": 10}])
    assert math.isclose(res["pass@1"].value, 0.15) and res["pass@10"].per_sample == [1.0, 0.0]


def test_only_passed_counts_and_unrun_items_are_unscored():
    recs = [{"id": "0", "group": "", "executions": [{"outcome": "exited_early"}]},
            {"id": "1", "group": "", "executions": [{"outcome": "passed"}]},
            {"id": "2", "group": "", "executions": [{"outcome": "error"}]}]
    res = compute_metrics(recs, [{"name": "pass_at_k", "k": 1}])["pass_at_k"]
    assert res.per_sample == [0.0, 1.0, None] and res.n == 2 and res.value == 0.5


def test_a_template_failing_on_one_item_is_recorded_there_and_the_others_run():
    template = "{{ prompt }}{{ completion }}\nassert {{ expected }}\n"
    recs = [{"id": "a", "group": "", "doc": {"prompt": "x = ", "expected": "x == 1"}, "outputs": ["1"]},
            {"id": "b", "group": "", "doc": {"prompt": "x = "}, "outputs": ["1"]},  # no 'expected' field
            {"id": "c", "group": "", "doc": {"prompt": "x = ", "expected": "x == 2"}, "outputs": ["1"]}]
    info = run_judge({"name": "code_exec", "program": template}, recs, ON)
    assert [r["executions"][0]["outcome"] for r in recs] == ["passed", "error", "failed"]
    assert "expected" in recs[1]["executions"][0]["detail"] and info["outcomes"]["error"] == 1
    assert set(OUTCOMES) >= {"passed", "exited_early", "error"}


def test_pass_at_k_needs_the_judge():
    with pytest.raises(ConfigError, match="judge: {name: code_exec"):
        compute_metrics([{"id": "0", "group": ""}], [{"name": "pass_at_k"}])


# -- judge ----------------------------------------------------------------------------------

def test_preflight_refuses_without_the_flag():
    spec = load_task("humaneval").raw["judge"]
    with pytest.raises(ConfigError) as e:
        check_judge(spec, {"sandbox": {"allow_code_execution": False}})
    assert "sandbox.allow_code_execution=true" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="allow_code_execution"):
        check_judge(spec, {})  # no sandbox block at all: off
    with pytest.raises(ConfigError, match="program template"):
        check_judge({"name": "code_exec", "program": "{{ completion "}, ON)
    check_judge(spec, ON)  # enabled: passes (and probes the sandbox)


def _humaneval_records(samples_dir: Path, completions: dict[str, list[str]]) -> tuple[list[dict], dict]:
    spec = load_task("humaneval")
    samples, _ = build_samples(spec, samples_dir)
    recs = [{"id": s.id, "group": "", "doc": s.doc, "outputs": completions.get(s.id, [s.doc["canonical_solution"]])}
            for s in samples]
    return recs, spec.raw["judge"]


def test_judge_runs_every_sample_and_records_program_outcome_stderr(samples_dir):
    recs, judge_spec = _humaneval_records(samples_dir, {
        "HumanEval/0": ["    return a + b\n", "    return a - b\n", "    while True:\n        pass\n"],
        "HumanEval/1": ["    return len(word)\n"],
    })
    info = run_judge(judge_spec, recs, ON)
    assert "code_exec" in JUDGES and info["programs"] == 6 and info["sandbox"]["mechanism"] in ("bwrap", "unshare", "rlimits")
    first = recs[0]["executions"]
    assert [e["outcome"] for e in first] == ["passed", "failed", "killed_for_limit"]
    assert first[1]["detail"] == "AssertionError" and "assert candidate(2, 3) == 5" in first[1]["stderr"]
    assert first[0]["program"].startswith(recs[0]["doc"]["prompt"] + "    return a + b\n")
    assert first[0]["program"].rstrip().endswith("check(add_pair)")
    assert recs[1]["executions"][0]["outcome"] == "failed"
    assert all(r["executions"][0]["outcome"] == "passed" for r in recs[2:])  # canonical solutions
    res = compute_metrics(recs, [{"name": "pass_at_k", "k": 1}])["pass_at_k"]
    assert res.per_sample == [pytest.approx(1 / 3), 0.0, 1.0, 1.0]


# -- task specs -----------------------------------------------------------------------------

def test_humaneval_prompt_is_the_problem_without_trailing_whitespace(samples_dir):
    spec = load_task("humaneval")
    samples, _ = build_samples(spec, samples_dir)
    assert [s.id for s in samples] == [f"HumanEval/{i}" for i in range(4)]
    assert samples[0].doc["prompt"].endswith('"""\n')
    assert samples[0].prompt.as_text() == samples[0].doc["prompt"][:-1]  # ends at the docstring's quotes
    assert spec.generation["until"] == ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
    assert spec.primary == "pass@1" and spec.card["row"] == "HumanEval"


def test_mbpp_uses_exemplars_2_to_4_and_the_test_split(samples_dir):
    spec = load_task("mbpp")
    samples, info = build_samples(spec, samples_dir)
    assert info["fewshot_ids"] == ["2", "3", "4"]
    assert [s.id for s in samples] == ["11", "12", "13"]  # 1 (prompt split) and 600 (train) excluded
    text = samples[0].prompt.as_text()
    # lm-eval's mbpp format, byte for byte: exemplar code verbatim ("\r\n" kept), "[DONE]", blank line.
    head = ("You are an expert Python programmer, and here is your task: Write a function to find the elements "
            "common to two lists, in sorted order. Your code should pass these tests:\n\n"
            "assert common_sorted([1, 2, 3], [2, 3, 4]) == [2, 3]\nassert common_sorted([5], [6]) == []\n"
            "assert common_sorted([7, 7, 8], [8, 7]) == [7, 8]\n[BEGIN]\n"
            "def common_sorted(xs, ys):\r\n  return sorted(set(xs) & set(ys))\n[DONE]\n\n")
    assert text.startswith(head) and text.count("[DONE]") == 3
    assert text.endswith("Your code should pass these tests:\n\nassert reverse_words(\"hello world\") == \"world hello\"\n"
                         "assert reverse_words(\"a b c\") == \"c b a\"\nassert reverse_words(\"one\") == \"one\"\n[BEGIN]\n")
    (prog,) = programs([{"id": samples[0].id, "doc": samples[0].doc, "outputs": [samples[0].doc["code"]]}],
                       spec.raw["judge"]["program"])
    assert prog.startswith(samples[0].doc["code"] + "\n")
    assert prog.endswith("assert reverse_words(\"a b c\") == \"c b a\"\nassert reverse_words(\"one\") == \"one\"\n")


@pytest.mark.shared_data
def test_reference_solutions_pass_on_the_real_data(shared_data):
    """The benchmarks' own reference solutions pass (a sample of each), assembled and run by
    the code_exec judge exactly as model outputs are, under the default limits."""
    run_cfg = compose_config(["sandbox.allow_code_execution=true", "sandbox.workers=2", "progress=false"])
    for task, ref, count in (("humaneval", "canonical_solution", 164), ("mbpp", "code", 500)):
        spec = load_task(task)
        samples, info = build_samples(spec, shared_data)
        assert len(samples) == count
        recs = [{"id": s.id, "group": "", "doc": s.doc, "outputs": [s.doc[ref]]} for s in samples[::40]]
        run_judge(spec.raw["judge"], recs, run_cfg)
        failed = [(r["id"], r["executions"][0]["stderr"]) for r in recs if r["executions"][0]["outcome"] != "passed"]
        assert failed == []
    assert info["fewshot_ids"] == ["2", "3", "4"]


# -- end to end -----------------------------------------------------------------------------

def test_code_suite_refuses_before_loading_the_model(tmp_path):
    from evalkit.runner.run import run

    cfg = run_config(tmp_path, "suite=card_code")
    with pytest.raises(ConfigError, match="sandbox.allow_code_execution=true"):
        run(cfg)  # no backend given: had the preflight not stopped it, the model would load


@pytest.mark.model
def test_code_suite_end_to_end_on_the_embedded_model(backend, tmp_path):
    from evalkit.runner.run import run

    cfg = run_config(tmp_path, "suite=card_code", "limit=1", "sandbox.allow_code_execution=true",
                     "+suite.tasks.humaneval.generation.max_new_tokens=12",
                     "+suite.tasks.mbpp.generation.max_new_tokens=12")
    run_dir = run(cfg, backend=backend)
    res = json.loads((run_dir / "results.json").read_text())
    for task in ("humaneval", "mbpp"):
        tr = res["tasks"][task]
        assert tr["n"] == 1 and tr["judge"]["programs"] == 1 and tr["judge"]["sandbox"]["network"] in ("none", "host network (NOT isolated)")
        records = read_jsonl(run_dir / tr["samples_file"])
        for r in records:
            (ex,) = r["executions"]
            assert r["outputs"][0] in ex["program"]
            assert r["scores"]["pass@1"] == float(ex["outcome"] == "passed")
        # The run's outcome counts are those of the executions it recorded.
        recorded = Counter(ex["outcome"] for r in records for ex in r["executions"])
        assert {k: v for k, v in tr["judge"]["outcomes"].items() if v} == dict(recorded)
        p1 = tr["metrics"]["pass@1"]
        assert p1["n"] == 1 and p1["value"] == np.mean([r["scores"]["pass@1"] for r in records])
        assert "pass@10" not in tr["metrics"]  # greedy n = 1: pass@10 is undefined, not NaN
    assert res["tasks"]["mbpp"]["fewshot"]["ids"] == ["2", "3", "4"]
