"""A training run played for real: a background process writes three checkpoints of the
embedded model over time (unchanged, lightly perturbed, every MLP zeroed); ``evalkit watch``
evaluates each once it is complete, passes the first two, stops with exit 1 on the third
(``stop_on_regression``), logs each to a local MLflow store, and keeps a trend report that
headless Chromium shows with every row at every step. Restarting picks up where it stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.backends.hf.loading import embedded_model_dir
from evalkit.paths import ROOT
from evalkit.watch.checkpoints import CheckpointScanner, step_of
from tests.watch_fixtures import write_data_root

pytestmark = pytest.mark.model
# ARC-e: 8 category questions, ARC-c: 30 "opposite of" questions, 0-shot (the fixture's data;
# zeroed MLPs turn about 12 of the 30 from right to wrong and none back: McNemar p < 0.001).
SUITE = ["suite=smoke", "~suite.tasks.mmlu", "~suite.tasks.gsm8k", "suite.tasks.arc_easy.limit=8",
         "+suite.tasks.arc_challenge={fewshot: {n: 0}, limit: 30}", "progress=false"]


def _evalkit(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "evalkit.cli", *args], capture_output=True, text=True, env=env,
                          cwd=kw.pop("cwd", None), timeout=kw.pop("timeout", 900), **kw)


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch")
    data = write_data_root(root / "data")
    ckpts = root / "ckpts"
    ckpts.mkdir()
    writer = subprocess.Popen([sys.executable, "-m", "tests.watch_fixtures", str(embedded_model_dir()), str(ckpts), "2"],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    args = ["watch", str(ckpts), *SUITE, f"data_root={data}", f"output_dir={root / 'runs'}",
            f"baseline={embedded_model_dir()}", "gate=release", "stop_on_regression=true", "poll_s=0.5",
            "settle_s=30", "idle_exit_s=240", "tracking=mlflow"]
    proc = _evalkit(*args)
    writer.wait(timeout=300)
    wdir = next((root / "runs").glob("watch__ckpts__*"))
    return {"root": root, "args": args, "proc": proc, "wdir": wdir, "state": json.loads((wdir / "watch.json").read_text())}


def test_watch_passes_two_checkpoints_and_stops_on_the_damaged_one(watched):
    proc, state = watched["proc"], watched["state"]
    assert proc.returncode == 1, proc.stderr[-3000:]
    ck = state["checkpoints"]
    assert [ck[n]["step"] for n in ("checkpoint-100", "checkpoint-200", "checkpoint-300")] == [100, 200, 300]
    # The gate of another engineer may answer "inconclusive" where the evidence is thin; never "fail" here.
    assert ck["checkpoint-100"]["vs_baseline"] in ("pass", "inconclusive")
    assert ck["checkpoint-200"]["vs_baseline"] in ("pass", "inconclusive")
    assert ck["checkpoint-300"]["vs_baseline"] == "fail"
    assert any(r.startswith("ARC-c") for r in ck["checkpoint-300"]["blocking"])
    assert "stopping: checkpoint-300 regressed" in proc.stderr
    assert (watched["wdir"] / "checkpoint-300" / "junit.xml").is_file()


def test_restart_picks_up_where_it_stopped(watched):
    again = _evalkit(*[a for a in watched["args"] if not a.startswith("idle_exit_s")], "idle_exit_s=0")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming; 3 checkpoint(s) already evaluated" in again.stderr
    assert "evaluating" not in again.stderr  # nothing was run again


def test_mlflow_store_holds_each_checkpoint_at_its_step(watched):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{watched['root'] / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("evalkit")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name.split("__")[0] for r in runs) == ["checkpoint-100", "checkpoint-200", "checkpoint-300"]
    for r in runs:
        step = int(r.data.tags["evalkit.step"])
        results = json.loads((Path(r.data.tags["evalkit.run_dir"]) / "results.json").read_text())
        for row, task in (("ARC-e", "arc_easy"), ("ARC-c", "arc_challenge")):
            hist = client.get_metric_history(r.info.run_id, row)
            assert [(m.step, round(m.value, 6)) for m in hist] == \
                [(step, round(results["tasks"][task]["metrics"]["acc_norm"]["value"] * 100, 6))]
            assert client.get_metric_history(r.info.run_id, f"{row}/stderr")[0].step == step
        assert r.data.params["task_hash.arc_challenge"] == results["tasks"]["arc_challenge"]["hash"]
        assert r.data.params["suite.name"] == "smoke"
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"card.html", "results.json", "gate_summary.md"} <= arts


def test_trend_cli_rebuilds_the_report_from_run_folders_in_step_order(watched):
    state = watched["state"]["checkpoints"]
    dirs = [state[n]["run_dir"] for n in ("checkpoint-300", "checkpoint-100", "checkpoint-200")]  # shuffled
    out = watched["root"] / "trend_cli.html"
    res = _evalkit("trend", *dirs, "gate=release", "-o", str(out))
    assert res.returncode == 0, res.stderr
    steps = [line.split()[1] for line in res.stdout.splitlines() if line.startswith("step ")]
    assert steps == ["100", "200", "300"]


@pytest.mark.skipif(__import__("evalkit.report.browser", fromlist=["x"]).find_chromium() is None,
                    reason="needs Debian's chromium (make system-deps)")
def test_trend_report_in_chromium(watched):
    from evalkit.report.browser import Chromium

    with Chromium(width=1400, height=1000) as browser:
        load = browser.open(watched["wdir"] / "trend.html")
        facts = browser.evaluate("""({
            plots: [...document.querySelectorAll('figure.trend')].map(f => ({row: f.dataset.row,
                points: f.querySelectorAll('circle').length, red: f.querySelectorAll('circle[data-state=worse]').length,
                ticks: [...f.querySelectorAll('text.tick')].map(t => t.textContent),
                base: f.querySelectorAll('line.base').length, width: f.querySelector('svg').getBoundingClientRect().width})),
            steps: [...document.querySelectorAll('table.checkpoints tbody tr')].map(r => [r.dataset.step, r.dataset.verdict]),
            banner: document.getElementById('trend-verdict').innerText,
            gateRows: [...document.querySelectorAll('#gate-table tbody tr')].map(r => r.dataset.row),
            scripts: document.scripts.length,
        })""")
        shot = browser.screenshot(watched["root"] / "trend.png")
    print(f"\ntrend screenshot: {shot}")
    assert load.console_errors == [] and load.requests == [load.url] and facts["scripts"] == 0
    assert [p["row"] for p in facts["plots"]] == ["ARC-e", "ARC-c"]
    for p in facts["plots"]:
        assert p["points"] == 3 and p["base"] == 1 and p["width"] >= 300
        assert {"100", "200", "300"} <= set(p["ticks"])
    arc_c = next(p for p in facts["plots"] if p["row"] == "ARC-c")
    assert arc_c["red"] == 1  # the damaged step, and only it
    assert [s for s, _ in facts["steps"]] == ["100", "200", "300"] and facts["steps"][2][1] == "fail"
    assert "checkpoint-300" in facts["banner"] and "FAIL" in facts["banner"]
    assert any(r.startswith("ARC-c") for r in facts["gateRows"])


def test_scanner_waits_for_a_checkpoint_being_written(tmp_path):
    ck = tmp_path / "checkpoint-50"
    ck.mkdir()
    scanner = CheckpointScanner(tmp_path, settle_s=3600)
    (ck / "config.json").write_text("{}")
    assert scanner.ready() == []  # no weights yet
    (ck / "model.safetensors").write_bytes(b"x" * 10)
    assert scanner.ready() == []  # first sight: not yet known to be stable
    with open(ck / "model.safetensors", "ab") as f:
        f.write(b"y")
    assert scanner.ready() == []  # grew since the last poll
    assert [c.step for c in scanner.ready()] == [50]  # unchanged across two polls
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": 77}))
    assert step_of(ck) == 77
    marked = CheckpointScanner(tmp_path, marker="DONE", settle_s=0)
    assert marked.ready() == []
    (ck / "DONE").touch()
    assert [c.name for c in marked.ready()] == ["checkpoint-50"]
