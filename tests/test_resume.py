"""Interrupt a real run (Ctrl-C, then kill -9), rerun the same command: it resumes,
recomputes no answered request, and ends with the results of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

# 10-shot ARC-c on the samples, one request per batch on the exact path (resume lives in
# the runner, whatever the backend path): slow enough to interrupt between answers.
ARGS = ["suite=smoke", "~suite.tasks.arc_easy", "~suite.tasks.mmlu", "~suite.tasks.gsm8k",
        "+suite.tasks.arc_challenge={fewshot: {n: 10}}", "+suite.tasks.arc_easy={fewshot: {n: 2}}", "model.batch_size=1", "model.prefix_sharing=false",
        "report=false", "progress=false"]


def _ctrl_c_enabled() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and children
    # inherit that (CI often runs this way); a terminal user's Ctrl-C always reaches the run.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _evalkit(out: Path, extra: list[str] = ()) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "evalkit.cli", f"output_dir={out}", *ARGS, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_enabled)


def _answers(out: Path) -> int:
    dbs = list(out.glob("*/requests.sqlite"))
    if not dbs:
        return 0
    try:
        with sqlite3.connect(dbs[0], timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.Error:
        return 0


def _interrupt_after(proc: subprocess.Popen, out: Path, n: int, sig: int) -> int:
    deadline = time.time() + 600
    while _answers(out) < n:
        assert proc.poll() is None, f"run ended before it could be interrupted: {proc.communicate()}"
        assert time.time() < deadline, "no progress"
        time.sleep(0.1)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    return proc.returncode


def test_interrupted_runs_resume_to_the_same_results(tmp_path):
    out = tmp_path / "runs"
    first = _evalkit(out)
    rc = _interrupt_after(first, out, 2, signal.SIGINT)
    assert rc == 130
    after_ctrl_c = _answers(out)
    second = _evalkit(out)
    assert _interrupt_after(second, out, after_ctrl_c + 2, signal.SIGKILL) == -signal.SIGKILL
    before_final = _answers(out)
    assert 0 < before_final
    final = _evalkit(out)
    stdout, stderr = final.communicate(timeout=900)
    assert final.returncode == 0, stderr
    (run_dir,) = out.iterdir()
    res = json.loads((run_dir / "results.json").read_text())
    assert res["requests"]["from_cache"] == before_final, "every answered request is reused"
    total = res["requests"]["from_cache"] + res["requests"]["computed"]
    assert before_final < total, "interrupted mid-run"

    clean = _evalkit(tmp_path / "clean")
    clean.communicate(timeout=900)
    (clean_dir,) = (tmp_path / "clean").iterdir()
    ref = json.loads((clean_dir / "results.json").read_text())
    assert clean_dir.name == run_dir.name, "same command, same run folder name"
    for key in ("value", "n"):
        assert res["tasks"]["arc_challenge"]["metrics"]["acc_norm"][key] == ref["tasks"]["arc_challenge"]["metrics"]["acc_norm"][key]
    resumed = [json.loads(x) for x in (run_dir / "samples" / "arc_challenge.jsonl").read_text().splitlines()]
    uninterrupted = [json.loads(x) for x in (clean_dir / "samples" / "arc_challenge.jsonl").read_text().splitlines()]
    for a, b in zip(resumed, uninterrupted):
        assert a["pred"] == b["pred"]
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)
