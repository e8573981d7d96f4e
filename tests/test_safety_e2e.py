"""End to end on the real embedded model: the card_safety suite on our samples, tiny limits."""

from __future__ import annotations

import json

import pytest

from evalkit.files import read_jsonl
from evalkit.runner.run import run
from tests.conftest import run_config

pytestmark = pytest.mark.model
pytest.importorskip("profanity_check")  # the default scorer (Python >= 3.11)

ROWS = {"RealToxicity": "realtoxicityprompts", "CrowS-Pairs": "crows_pairs", "BBQ Ambig": "bbq", "BBQ Disambig": "bbq",
        "Winogender": "winogender", "TruthfulQA": "truthfulqa_mc", "Winobias 1_2": "winobias",
        "Winobias 2_2": "winobias", "Toxigen": "toxigen"}
LOWER_IS_BETTER = {"RealToxicity", "CrowS-Pairs", "Toxigen"}


@pytest.fixture(scope="module")
def safety_run(backend, tmp_path_factory):
    cfg = run_config(tmp_path_factory.mktemp("safety"), "suite=card_safety", "limit=1")
    # Generation is the slow part on a CPU: fewer and shorter samples than the pinned protocol.
    tasks = cfg["suite"]["tasks"]
    tasks["realtoxicityprompts"] = {"generation": {"n": 2, "max_new_tokens": 8}}
    tasks["toxigen"] = {"generation": {"max_new_tokens": 8}}
    tasks["truthfulqa_gen"] = {"generation": {"max_new_tokens": 12}}
    return run(cfg, backend=backend), cfg


def test_card_safety_fills_every_row_with_value_stderr_n_and_direction(safety_run):
    from evalkit.card import card_entries

    run_dir, _ = safety_run
    res = json.loads((run_dir / "results.json").read_text())
    filled = {}
    for task, tr in res["tasks"].items():
        for e in card_entries(task, tr):
            m = tr["metrics"][e["metric"]]
            assert m["value"] == m["value"] and m["n"] >= 1, (task, e["metric"])  # not NaN
            se = m["stderr"]
            assert se is None or (se == se and se >= 0), (task, e["metric"], se)  # an interval, or none: never NaN
            filled[e["row"]] = (task, tr["higher_is_better"][e["metric"]])
    assert {row: task for row, (task, _) in filled.items()} == ROWS
    assert {row for row, (_, hib) in filled.items() if not hib} == LOWER_IS_BETTER
    bbq = res["tasks"]["bbq"]["metrics"]
    assert bbq["bias_ambig"]["extra"]["source"]["SES"] == "lite" and bbq["bias_ambig"]["extra"]["source"]["Age"] == "full"
    assert not res["tasks"]["bbq"]["higher_is_better"]["bias_disambig"]


def test_toxicity_rows_record_the_scorer_and_per_output_scores(safety_run):
    run_dir, _ = safety_run
    res = json.loads((run_dir / "results.json").read_text())
    for task in ("realtoxicityprompts", "toxigen"):
        judge = res["tasks"][task]["judge"]
        assert judge["scorer"]["name"] == "profanity_check" and "sha256:" in judge["scorer"]["version"]
        for r in read_jsonl(run_dir / "samples" / f"{task}.jsonl"):
            assert len(r["toxicity"]) == len(r["outputs"]) and all(0.0 <= t <= 1.0 for t in r["toxicity"])
            assert r["scores"]["toxicity_avg"] == pytest.approx(sum(r["toxicity"]) / len(r["toxicity"]))
    rtp = read_jsonl(run_dir / "samples" / "realtoxicityprompts.jsonl")
    assert {r["group"] for r in rtp} == {"toxic", "nontoxic"} and all(len(r["outputs"]) == 2 for r in rtp)


def test_rerun_recomputes_nothing_and_rescores_nothing(safety_run, backend):
    run_dir, cfg = safety_run
    assert run(cfg, backend=backend) == run_dir
    res = json.loads((run_dir / "results.json").read_text())
    assert res["requests"]["computed"] == 0
    for task in ("realtoxicityprompts", "toxigen"):
        judge = res["tasks"][task]["judge"]
        assert judge["scored"] == 0 and judge["from_cache"] == judge["texts"]
