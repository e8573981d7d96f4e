"""Experiment tracking: log a finished run folder to MLflow (``tracking=mlflow``).

What goes in: the resolved config (flattened) and every task's hash as params; each card
row's value and standard error, in points on the card's scale, as metrics at the run's
step (the checkpoint's training step under ``evalkit watch``); ``card.html``,
``results.json`` and the gate summary as artifacts. Tags name the run folder, so logging
the same finished run again (a resumed command, a restarted watch) updates its MLflow run
instead of adding a second one.

Tracking never costs a run: the run folder is complete before anything is logged, and
any failure (server down, bad URI, MLflow missing) prints one warning line and returns.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from evalkit.card import row_entries
from evalkit.rundir import RESULTS, load_results

log = logging.getLogger("evalkit")
_PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call
_PARAM_VALUE_MAX = 6000
_TAG_RUN_DIR = "evalkit.run_dir"


def local_uri(output_dir: str | Path) -> str:
    """The default store: a SQLite file under the output folder (nothing to start)."""
    return f"sqlite:///{(Path(output_dir).expanduser().resolve() / 'mlflow.db').as_posix()}"


def track_run(cfg: dict[str, Any], run_dir: str | Path, step: int | None = None,
              gate_summary: str | None = None) -> str | None:
    """Log ``run_dir`` as ``cfg["tracking"]`` says; the MLflow run id, or None (no tracking,
    or it failed: one warning on stderr, never an exception)."""
    settings = cfg.get("tracking") or {}
    if settings.get("backend", "none") in (None, "none"):
        return None
    try:
        return _log_mlflow(settings, cfg, Path(run_dir), step, gate_summary)
    except Exception as e:  # noqa: BLE001 - tracking must never lose a finished run
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        print(f"evalkit: warning: MLflow tracking failed for {run_dir} ({type(e).__name__}: {first}); "
              "the run folder is complete, rerun the command to log it", file=sys.stderr)
        return None


def _log_mlflow(settings: dict[str, Any], cfg: dict[str, Any], run_dir: Path, step: int | None,
                gate_summary: str | None) -> str:
    # An unreachable server would otherwise be retried with backoff for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = settings.get("uri") or local_uri(cfg.get("output_dir", "runs"))
    client = MlflowClient(tracking_uri=uri)
    name = str(settings.get("experiment") or "evalkit")
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        exp_id = exp.experiment_id
    elif uri.startswith("sqlite:"):  # keep artifacts beside the local store, not in the working folder
        art = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        exp_id = client.create_experiment(name, artifact_location=art.resolve().as_uri())
    else:
        exp_id = client.create_experiment(name)

    results = load_results(run_dir)
    key = str(run_dir.resolve())
    found = client.search_runs([exp_id], filter_string=f"tags.`{_TAG_RUN_DIR}` = '{_quote(key)}'", max_results=1)
    fresh = not found or found[0].data.tags.get("evalkit.created") != results.get("created")
    if fresh:
        tags = {_TAG_RUN_DIR: key, "evalkit.created": str(results.get("created")), "evalkit.suite": str(results.get("suite")),
                "evalkit.config_hash": str(results.get("config_hash")), "evalkit.model": str((results.get("model") or {}).get("label"))}
        run = client.create_run(exp_id, run_name=run_dir.name, tags=tags)
        run_id = run.info.run_id
        params = [Param(k[:250], v) for k, v in run_params(cfg, results).items()]
        for i in range(0, len(params), _PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[i:i + _PARAMS_PER_BATCH])
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, int(step or 0)) for k, v in run_metrics(results).items()]
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        if step is not None:
            client.log_batch(run_id, tags=[RunTag("evalkit.step", str(step))])
    else:
        run_id = found[0].info.run_id
    for f in ("card.html", RESULTS):
        if (run_dir / f).is_file():
            client.log_artifact(run_id, str(run_dir / f))
    if gate_summary:
        client.log_text(run_id, gate_summary, "gate_summary.md")
    client.set_terminated(run_id)
    log.info("MLflow: run %s in experiment %r at %s", run_id, name, _safe_uri(uri))
    return run_id


def run_params(cfg: dict[str, Any], results: dict[str, Any]) -> dict[str, str]:
    """The resolved config flattened to ``a.b.c`` keys, plus ``task_hash.<task>``."""
    flat: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            flat[prefix] = str(node)[:_PARAM_VALUE_MAX]

    walk({k: v for k, v in cfg.items() if k != "hydra"}, "")
    for task, tr in results.get("tasks", {}).items():
        flat[f"task_hash.{task}"] = str(tr.get("hash"))
    return flat


def run_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``<row>`` and ``<row>/stderr`` per card row, in points on the card's scale."""
    out: dict[str, float] = {}
    for task, tr in results.get("tasks", {}).items():
        for e in row_entries(task, tr):
            m = tr["metrics"].get(e["metric"])
            if m is None or m.get("value") is None:
                continue
            name = metric_name(e["row"])
            out[name] = float(m["value"]) * e["scale"]
            if m.get("stderr") is not None:
                out[f"{name}/stderr"] = float(m["stderr"]) * e["scale"]
    return out


def metric_name(row: str) -> str:
    """An MLflow metric key for a card row (MLflow allows letters, digits, ``_-. /``)."""
    return re.sub(r"[^\w\-. /]", "_", row)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _safe_uri(uri: str) -> str:
    """The URI without credentials (``https://user:pass@host`` -> ``https://host``)."""
    return re.sub(r"//[^/@]+@", "//", uri)
