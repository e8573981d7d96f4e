"""The new rows end to end on the embedded model (a few sample items each)."""

from __future__ import annotations

import json

import pytest

from evalkit.files import read_jsonl
from evalkit.metrics.generation import matches
from evalkit.runner.run import run
from tests.conftest import run_config

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def rows_run(backend, tmp_path_factory):
    cfg = run_config(tmp_path_factory.mktemp("rows"))
    cfg["suite"] = {"name": "rows", "tasks": {
        "winogrande": {"limit": 2}, "boolq": {"limit": 1}, "triviaqa": {"limit": 1},
        "agieval": {"limit": 1, "groups": ["sat-math"]},
    }}
    run_dir = run(cfg, backend=backend)
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_partial_scoring_scores_the_shared_suffix_under_each_context(rows_run):
    run_dir, res = rows_run
    wg = read_jsonl(run_dir / "samples" / "winogrande.jsonl")
    r = wg[0]
    assert r["contexts"] == ["The trophy did not fit in the suitcase because the trophy",
                             "The trophy did not fit in the suitcase because the suitcase"]
    assert r["continuations"] == [" was too big.", " was too big."]
    assert r["logprobs"][0] != r["logprobs"][1] and r["n_tokens"][0] == r["n_tokens"][1]
    # same two contexts, other suffix: the requests differ only in their continuation
    assert wg[1]["contexts"] == r["contexts"] and wg[1]["continuations"][0] == " was too small."
    assert res["tasks"]["winogrande"]["metrics"]["acc"]["n"] == 2


def test_rows_report_their_card_row_and_metrics(rows_run):
    run_dir, res = rows_run
    t = res["tasks"]
    assert t["boolq"]["card"]["row"] == "BoolQ" and set(t["boolq"]["metrics"]) == {"acc"}
    assert set(t["agieval"]["metrics"]) == {"acc", "acc_macro"} and t["agieval"]["n"] == 1
    tq = read_jsonl(run_dir / "samples" / "triviaqa.jsonl")[0]
    assert tq["prompt"].count("\nAnswer:") == 6 and "\n" not in tq["outputs"][0].strip()
    assert tq["extracted"][0]["answer"] == tq["outputs"][0].strip()
    # scored with TriviaQA's normalisation against every alias (a raw string compare would differ)
    assert tq["scores"]["exact_match"] == float(matches(tq["extracted"][0]["answer"], tq["target"], "triviaqa"))
    ag = read_jsonl(run_dir / "samples" / "agieval.jsonl")[0]
    assert ag["continuations"] == [" A", " B", " C", " D"] and ag["prompt"].endswith("The answer is therefore")
