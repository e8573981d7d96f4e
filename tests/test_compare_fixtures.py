"""Small run folders written from code, in the runner's layout, for the compare, gate,
report and browser tests (``make_run``); and a check that the real loader reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from evalkit.card import column_labels
from evalkit.rundir import load_results, load_samples

CARD = {
    "arc_easy": {"table": "capability", "row": "ARC-e", "metric": "0-shot"},
    "mmlu": {"table": "capability", "row": "MMLU", "metric": "5-shot, top-1"},
    "toxicity": {"table": "safety", "row": "RealToxicity", "metric": "average"},
    "bbq": {"table": "safety", "row": "BBQ Ambig", "metric": "1-shot, top-1"},
}


def mc_record(i: int, score: float, group: str = "", pred_text: str | None = None) -> dict[str, Any]:
    """A multiple-choice record whose pick is right (score 1) or wrong (0)."""
    choices = ["red", "blue", "green", pred_text or "yellow"]
    gold = 1
    pred = gold if score == 1 else 3
    return {"id": f"{group + '/' if group else ''}q{i}", "group": group, "doc": {"question": f"Question {i}?"},
            "prompt": f"Question: Question {i}?\nAnswer:", "choices": choices, "gold": gold, "pred": pred,
            "logprobs": [-2.0, -1.0 if score else -3.0, -4.0, -2.5 if not score else -5.0],
            "scores": {"acc": float(score)}}


def gen_record(i: int, score: float, output: str, metric: str = "toxicity") -> dict[str, Any]:
    """A generation record with a continuous per-sample score (e.g. a toxicity probability)."""
    return {"id": f"p{i}", "group": "", "doc": {"prompt": f"Prompt {i}"}, "prompt": f"Prompt {i}",
            "target": None, "outputs": [output], "extracted": [{}], "scores": {metric: float(score)}}


def make_run(root: Path, name: str, tasks: dict[str, dict[str, Any]], config: dict[str, Any] | None = None,
             model: str = "tiny-model") -> Path:
    """Write ``root/name`` as a finished run folder.

    ``tasks``: task -> {"records": [...], "metric": "acc", "higher_is_better": True,
    "hash": "h-<task>", "card": CARD.get(task), "aggregate": "micro", "value": None (mean of
    the scores unless given), "metric_specs": None}.
    """
    run = root / name
    (run / "samples").mkdir(parents=True, exist_ok=True)
    out_tasks = {}
    for task, t in tasks.items():
        metric = t.get("metric", "acc")
        recs = t["records"]
        (run / "samples" / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        scores = [r["scores"].get(metric) for r in recs if r.get("scores", {}).get(metric) is not None]
        value = t.get("value", sum(scores) / len(scores) if scores else float("nan"))
        tr = {
            "hash": t.get("hash", f"h-{task}"), "card": t.get("card", CARD.get(task, {})), "type": "multiple_choice",
            "primary": metric, "higher_is_better": {metric: t.get("higher_is_better", True)},
            "metrics": {metric: {"value": value, "stderr": t.get("stderr", 0.01), "n": len(recs), "breakdown": {}}},
            "n": len(recs), "samples_file": f"samples/{task}.jsonl", "attributed_seconds": 1.0,
            "aggregate": t.get("aggregate", "micro"),
        }
        if "metric_specs" in t:
            tr["metric_specs"] = t["metric_specs"]
        out_tasks[task] = tr
    results = {
        "evalkit_version": "test", "created": "2026-01-01T00:00:00+00:00", "config_hash": name[-6:],
        "suite": "fixture", "model": {"label": model, "name": model, "pretrained": f"/models/{model}",
                                      "loaded_dtype": "float32", "device": "cpu"},
        "prompting": {"chat_template": bool((config or {}).get("chat_template", False))}, "data_root": "fixture",
        "limit": None, "seed": 1, "timing": {"wall_seconds": 1.0}, "tokens": {"forward": 10}, "tasks": out_tasks,
    }
    (run / "results.json").write_text(json.dumps(results))
    cfg = {"model": {"name": model, "chat_template": False, **(config or {})}, "output_dir": str(root), "seed": 1}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run


def test_fixture_run_folders_read_back_with_the_real_loader(tmp_path):
    a = make_run(tmp_path, "a", {"arc_easy": {"records": [mc_record(i, i % 2) for i in range(6)]}})
    b = make_run(tmp_path, "b", {"arc_easy": {"records": [mc_record(i, 1) for i in range(6)]}}, {"chat_template": True})
    res = [load_results(a), load_results(b)]
    assert res[0]["tasks"]["arc_easy"]["metrics"]["acc"]["value"] == 0.5
    assert len(load_samples(a, "arc_easy")) == 6
    # Runs of one model are labelled by the setting that differs between them.
    assert column_labels(res) == ["chat_template=false", "chat_template=true"]


def test_runs_of_different_suites_are_labelled_by_suite_not_by_every_override(tmp_path):
    def run(name: str, suite: dict) -> dict:
        folder = make_run(tmp_path, name, {"arc_easy": {"records": [mc_record(i, 1) for i in range(4)]}})
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        (folder / "config.yaml").write_text(yaml.safe_dump({**cfg, "suite": suite}))
        return load_results(folder)

    overrides = {f"task{i}": {"limit": 100 + i} for i in range(20)}
    pt = run("pt", {"name": "card_pt", "tasks": overrides})
    code = run("code", {"name": "card_code", "tasks": {"humaneval": {}}})
    cfg = yaml.safe_load((Path(code["run_dir"]) / "config.yaml").read_text())
    (Path(code["run_dir"]) / "config.yaml").write_text(yaml.safe_dump({**cfg, "sandbox": {"allow_code_execution": True}}))
    assert column_labels([pt, code]) == ["suite=card_pt", "suite=card_code"]
    # Same suite, many differing overrides: shown, but a header stays a header.
    other = run("pt2", {"name": "card_pt", "tasks": {k: {"limit": 1} for k in overrides}})
    labels = column_labels([pt, other])
    assert all(len(label) <= 80 for label in labels) and labels[0].startswith("task0.limit=100, ") and labels[0].endswith("…")
