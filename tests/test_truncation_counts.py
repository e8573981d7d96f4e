"""A prompt longer than the model's window is cut from the left; that is counted per task
in results.json and shown in the report, never silent (real embedded model, window shrunk)."""

from __future__ import annotations

import json

import pytest

from evalkit.backends.requests import GenerateRequest, LoglikelihoodRequest
from evalkit.report.build import write_report
from evalkit.runner.run import run
from tests.conftest import run_config

pytestmark = pytest.mark.model


def test_backend_reports_tokens_cut_from_the_left(backend, monkeypatch):
    monkeypatch.setattr(backend, "max_length", 16)
    long_ctx = "one two three four five six seven eight nine ten " * 4
    (_, ll_long), = backend.loglikelihood([LoglikelihoodRequest(long_ctx, " eleven")])
    (_, ll_short), = backend.loglikelihood([LoglikelihoodRequest("one", " two")])
    assert ll_long.truncated > 0 and ll_short.truncated == 0
    (_, gen), = backend.generate([GenerateRequest(long_ctx, max_new_tokens=2)])
    assert gen.truncated > 0


def test_truncated_requests_are_counted_per_task_and_shown(backend, monkeypatch, tmp_path):
    monkeypatch.setattr(backend, "max_length", 16)  # every ARC-e prompt is longer than this
    cfg = run_config(tmp_path, "suite=smoke", "~suite.tasks.mmlu", "~suite.tasks.gsm8k",
                     "suite.tasks.arc_easy.limit=2")
    run_dir = run(cfg, backend=backend)
    cut = json.loads((run_dir / "results.json").read_text())["tasks"]["arc_easy"]["truncated"]
    assert 1 <= cut["items"] <= 2 and cut["requests"] >= cut["items"] and cut["tokens"] > 0
    html = write_report([run_dir], tmp_path / "card.html").read_text()
    assert 'class="truncated" data-task="arc_easy"' in html and f"({cut['items']} of 2 items)" in html
