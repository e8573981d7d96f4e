"""MLflow tracking against a real ``mlflow server`` started here, tracking failures that
must not lose a run, and the model-index export read back by huggingface_hub."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from evalkit.paths import ROOT
from evalkit.rundir import load_results
from tests.test_report_v2 import two_runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg(run_dir: Path, uri: str | None) -> dict:
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    cfg.setdefault("suite", {"name": "fixture"})
    cfg["tracking"] = {"backend": "mlflow", "uri": uri, "experiment": "evalkit-test"}
    cfg["output_dir"] = str(run_dir.parent)
    return cfg


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return two_runs(tmp_path_factory.mktemp("trk"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if mlflow is None:
        pytest.skip("mlflow is not installed")
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    proc = subprocess.Popen([mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}",
                             "--artifacts-destination", str(root / "artifacts")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "mlflow server did not start"
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_real_mlflow_server_receives_metrics_params_and_artifacts(server, runs):
    from mlflow.tracking import MlflowClient

    from evalkit.tracking import run_metrics, track_run

    a, _ = runs
    run_id = track_run(_cfg(Path(a), server), a, step=1500, gate_summary="### gate: PASS")
    assert run_id
    client = MlflowClient(tracking_uri=server)
    run = client.get_run(run_id)
    expected = run_metrics(load_results(a))
    assert expected and {k: round(v, 6) for k, v in run.data.metrics.items()} == {k: round(v, 6) for k, v in expected.items()}
    assert all(h.step == 1500 for k in expected for h in client.get_metric_history(run_id, k))
    wanted = {"gate_summary.md"} | {f for f in ("card.html", "results.json") if (Path(a) / f).is_file()}
    assert "results.json" in wanted and wanted <= {x.path for x in client.list_artifacts(run_id)}
    # The same finished run logged again (a resumed command) updates it; no second run.
    assert track_run(_cfg(Path(a), server), a, step=1500) == run_id


def test_tracking_failure_warns_and_keeps_the_run(runs, capsys):
    from evalkit.tracking import track_run

    a, _ = runs
    before = sorted(p.name for p in Path(a).iterdir())
    assert track_run(_cfg(Path(a), f"http://127.0.0.1:{_free_port()}"), a, step=1) is None
    err = capsys.readouterr().err
    assert err.startswith("evalkit: warning: MLflow tracking failed") and err.count("\n") == 1
    assert sorted(p.name for p in Path(a).iterdir()) == before


def test_model_index_round_trips_through_huggingface_hub(runs, tmp_path):
    from huggingface_hub import ModelCard

    a, _ = runs
    out = tmp_path / "README.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "evalkit.cli", "report", str(a), "--format", "model-index", "-o", str(out)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    from evalkit.report.model_index import eval_results

    written = eval_results(load_results(a))
    card = ModelCard.load(out)
    parsed = card.data.eval_results
    assert len(parsed) == len(written) > 0
    fields = ("task_type", "task_name", "dataset_type", "dataset_name", "dataset_config", "dataset_split",
              "dataset_revision", "metric_type", "metric_value", "metric_name", "verified", "source_name", "source_url")
    key = lambda r: (r.dataset_name, r.metric_type)  # noqa: E731
    for w, p in zip(sorted(written, key=key), sorted(parsed, key=key)):
        assert {f: getattr(p, f) for f in fields} == {f: getattr(w, f) for f in fields}
    assert "| Benchmark | Metric |" in card.text and "ARC-e" in card.text
    md = subprocess.run([sys.executable, "-m", "evalkit.cli", "report", str(a), "--format", "md", "-o", str(tmp_path / "t.md")],
                        capture_output=True, text=True, env=env, timeout=120)
    assert md.returncode == 0 and (tmp_path / "t.md").read_text() in card.text
