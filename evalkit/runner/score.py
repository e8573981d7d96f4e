"""Score a run from its folder: cached answers -> records -> judges -> metrics -> results.json.

Needs no live backend: what it reports of the model comes from ``answer.json``.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import platform
from pathlib import Path
from typing import Any

from evalkit import __version__
from evalkit.backends.requests import Result, request_key
from evalkit.errors import EvalkitError
from evalkit.files import atomic_write_json, atomic_write_jsonl, read_json
from evalkit.judges import run_judge
from evalkit.metrics import METRICS, compute_metrics
from evalkit.runner.cachedir import CacheSet
from evalkit.runner.plan import Plan, TaskPlan, chat_settings
from evalkit.runner.records import build_record, truncation_counts
from evalkit.rundir import ANSWER, RESULTS, SAMPLES, config_hash

log = logging.getLogger("evalkit")

_PACKAGES = ("torch", "transformers", "datasets", "lm_eval", "numpy", "pandas", "hydra-core", "jinja2", "gguf")


def score_run(plan: Plan, run_dir: Path, cfg: dict[str, Any], data_root: Path | None,
              wall_start: float | None = None) -> dict[str, Any]:
    """Write every task's samples file and ``results.json``; returns the results."""
    import time

    meta_path = run_dir / ANSWER
    if not meta_path.exists():
        raise EvalkitError(f"{run_dir} has no {ANSWER}: its requests were never answered; rerun its command")
    meta = read_json(meta_path)
    cache = CacheSet(run_dir)
    answers = cache.load(request_key(r) for t in plan.tasks for reqs in t.requests for r in reqs)
    cache.close()
    missing = len(plan.unique) - len(answers)
    if missing:
        raise EvalkitError(f"{run_dir}: {missing} of {len(plan.unique)} requests are not answered yet; "
                           "rerun its command to answer them")
    tasks = {t.spec.name: score_task(t, answers, run_dir, cfg, meta["task_seconds"].get(t.spec.name, 0.0))
             for t in plan.tasks}
    timing = {"model_load_seconds": meta["model_load_seconds"], "request_seconds": meta["request_seconds"]}
    if wall_start is not None:
        timing = {"wall_seconds": round(time.perf_counter() - wall_start, 3), **timing}
    results = {
        "evalkit_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config_hash": config_hash(cfg),
        "suite": cfg["suite"]["name"],
        "model": meta["model"],
        "prompting": chat_settings(cfg).describe(),
        "data_root": str(data_root) if data_root else "hub",
        "limit": cfg.get("limit"),
        "seed": cfg["seed"],
        "packages": _versions(),
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()},
        "timing": timing,
        "tokens": meta["tokens"],
        "requests": meta["requests"],
        "tasks": tasks,
    }
    atomic_write_json(run_dir / RESULTS, results)
    log.info("results: %s", run_dir / RESULTS)
    return results


def score_task(task: TaskPlan, answers: dict[str, Result], run_dir: Path, cfg: dict[str, Any],
               seconds: float) -> dict[str, Any]:
    """Records, judge and metrics of one task; writes its samples file; returns its results entry."""
    spec = task.spec
    records = [build_record(spec, s, reqs, answers) for s, reqs in zip(task.samples, task.requests)]
    judge_info = run_judge(spec.raw["judge"], records, cfg) if spec.raw.get("judge") else None
    metrics = compute_metrics(records, spec.metrics, spec.raw.get("aggregate", "micro"))
    atomic_write_jsonl(run_dir / SAMPLES / f"{spec.name}.jsonl", records)
    out = {
        "hash": spec.hash,
        "card": spec.card,
        "type": spec.type,
        "primary": spec.primary,
        "higher_is_better": {key: METRICS[name].higher_is_better for key, name in spec.metric_keys.items()},
        # How each metric was computed, so `evalkit compare` can recompute aggregate-only metrics on resamples.
        "metric_specs": spec.metrics,
        "aggregate": spec.raw.get("aggregate", "micro"),
        "metrics": {
            name: {"value": r.value, "stderr": r.stderr, "n": r.n, "breakdown": r.breakdown, **({"extra": r.extra} if r.extra else {})}
            for name, r in metrics.items()
        },
        "n": len(records),
        "truncated": truncation_counts(records),  # prompts cut from the left to fit the window
        "fewshot": {"n": spec.fewshot["n"], "shared": spec.fewshot["shared"], "select": spec.fewshot["select"],
                    "seed": spec.fewshot["seed"], "ids": task.data.get("fewshot_ids", [])},
        "data": {"fingerprint": task.data["fingerprint"], "n_available": task.data["n_docs"]},
        "limit": spec.limit or cfg.get("limit"),
        "groups": spec.groups,
        "attributed_seconds": round(seconds, 3),
        "samples_file": f"{SAMPLES}/{spec.name}.jsonl",
    }
    if judge_info:
        out["judge"] = judge_info
    return out


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "evalkit": __version__}
    for pkg in _PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out
