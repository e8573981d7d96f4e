"""End to end on the real embedded model: the smoke suite, its run folder and its card."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from evalkit.files import read_jsonl
from evalkit.report.build import write_report
from evalkit.runner.run import run
from tests.conftest import run_config

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def smoke_run(backend, tmp_path_factory):
    cfg = run_config(tmp_path_factory.mktemp("smoke"), "suite=smoke")
    return run(cfg, backend=backend), cfg


def test_smoke_run_folder_has_everything_a_number_needs(smoke_run):
    run_dir, cfg = smoke_run
    res = json.loads((run_dir / "results.json").read_text())
    assert set(res["tasks"]) == {"arc_easy", "mmlu", "gsm8k"}
    assert (run_dir / "config.yaml").exists() and (run_dir / "requests.sqlite").exists()
    assert res["model"]["gguf_sha256"] and res["model"]["n_parameters"] > 100_000_000
    assert res["packages"]["torch"] == importlib.metadata.version("torch") and res["timing"]["wall_seconds"] > 0
    assert res["tokens"]["forward"] > 0 and res["requests"]["computed"] == res["requests"]["unique"]
    for name, tr in res["tasks"].items():
        m = tr["metrics"][tr["primary"]]
        assert 0.0 <= m["value"] <= 1.0 and m["n"] == tr["n"] and len(tr["hash"]) == 16
        records = read_jsonl(run_dir / tr["samples_file"])
        assert len(records) == tr["n"]
        assert all(tr["primary"] in r["scores"] for r in records)
    assert res["tasks"]["mmlu"]["n"] == 4  # limit 2 per subject, 2 sample subjects
    assert set(res["tasks"]["mmlu"]["metrics"]["acc"]["breakdown"]) == {"astronomy", "high_school_geography"}


def test_records_hold_prompt_answers_and_scores(smoke_run):
    run_dir, _ = smoke_run
    arc = read_jsonl(run_dir / "samples" / "arc_easy.jsonl")[0]
    assert arc["prompt"] == "Question: Which of these is a source of light?\nAnswer:"
    assert arc["continuations"][0] == " the Sun" and len(arc["logprobs"]) == 4
    assert arc["pred"] == max(range(4), key=lambda i: arc["logprobs"][i])
    gsm = read_jsonl(run_dir / "samples" / "gsm8k.jsonl")[0]
    assert gsm["outputs"] and "Question:" not in gsm["outputs"][0]  # stopped at the stop string
    assert set(gsm["extracted"][0]) == {"flexible", "strict"}


def test_same_config_reuses_the_folder_and_recomputes_nothing(smoke_run, backend):
    run_dir, cfg = smoke_run
    forward_before = backend.stats.forward_tokens
    assert run(cfg, backend=backend) == run_dir
    res = json.loads((run_dir / "results.json").read_text())
    assert res["requests"]["computed"] == 0 and res["requests"]["from_cache"] == res["requests"]["unique"]
    assert backend.stats.forward_tokens == forward_before


def test_card_html_is_self_contained_and_escapes_model_text(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    path = run_dir / "samples" / "gsm8k.jsonl"
    records = read_jsonl(path)
    records[0]["outputs"][0] = "<script>alert(1)</script>"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    html = write_report([run_dir], tmp_path / "card.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "ARC-e" in html and "MMLU" in html and "GSM8K" in html and "88.00" in html  # card value beside
    assert "http://" not in html and "https://" not in html
