"""Run a suite: build every request, deduplicate, answer in bulk, score, write the run folder."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import platform
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from evalkit import __version__
from evalkit.backends import Backend, Request
from evalkit.backends.factory import build_backend
from evalkit.backends.requests import request_key
from evalkit.config import data_root as resolve_data_root
from evalkit.config import validate
from evalkit.files import atomic_write_json, atomic_write_jsonl, atomic_write_text
from evalkit.judges import check_judge, run_judge
from evalkit.metrics import compute_metrics
from evalkit.runner.cache import RequestCache
from evalkit.runner.prompting import ChatSettings, sample_requests
from evalkit.runner.records import build_record
from evalkit.rundir import CACHE, CONFIG, RESULTS, SAMPLES, config_hash, run_dir_for
from evalkit.tasks import Sample, TaskSpec, build_samples, load_task
from evalkit.tasks.data import fingerprint_docs

log = logging.getLogger("evalkit")

_KIND_METHOD = {"loglikelihood": "loglikelihood", "rolling": "loglikelihood_rolling", "generate": "generate"}
_PACKAGES = ("torch", "transformers", "datasets", "lm_eval", "numpy", "pandas", "hydra-core", "jinja2", "gguf")


@dataclass
class TaskPlan:
    spec: TaskSpec
    samples: list[Sample]
    requests: list[list[Request]]  # per sample
    data: dict[str, Any]
    seconds: float = 0.0  # compute time attributed to this task's requests
    extra: dict[str, Any] = field(default_factory=dict)


def run(cfg: dict[str, Any], backend: Backend | None = None) -> Path:
    """Run the suite ``cfg`` describes and return its run folder.

    ``cfg`` is the resolved config (plain dict). ``backend`` may be passed in to reuse a
    loaded model (tests, multi-suite scripts); otherwise it is built from ``cfg["model"]``.
    """
    validate(cfg)
    t_start = time.perf_counter()
    run_dir = run_dir_for(cfg)
    fresh = not run_dir.exists()  # a run that fails before its first answer leaves no folder behind
    root = resolve_data_root(cfg.get("data_root"))

    # Tasks first: a bad spec or data file fails before the model is loaded.
    specs = [load_task(name, overrides or {}) for name, overrides in cfg["suite"]["tasks"].items()]
    for spec in specs:
        if spec.raw.get("judge"):
            check_judge(spec.raw["judge"], cfg)
    built = {}
    for spec in specs:
        samples, info = build_samples(spec, root, cfg.get("limit"))
        info["fingerprint"] = fingerprint_docs([s.doc for s in samples])
        built[spec.name] = (samples, info)

    backend = backend or build_backend(cfg["model"])
    chat = ChatSettings(bool(cfg["model"].get("chat_template")), bool(cfg["model"].get("fewshot_as_multiturn", True)))
    plans = [
        TaskPlan(spec, built[spec.name][0], [sample_requests(s, spec, chat, backend, cfg["seed"]) for s in built[spec.name][0]], built[spec.name][1])
        for spec in specs
    ]

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    log.info("run folder: %s", run_dir)
    cache = RequestCache(run_dir / CACHE)
    try:
        stats = _answer_all(plans, backend, cache, progress=cfg.get("progress", True))
    except BaseException as e:
        empty = cache.db.execute("SELECT 1 FROM answers LIMIT 1").fetchone() is None
        cache.close()
        if fresh and empty:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            saved = "nothing was answered yet" if empty else f"answers so far are saved in {run_dir / CACHE}"
            print(f"\ninterrupted: {saved}; run the same command again to resume", file=sys.stderr)
            raise SystemExit(130) from None
        raise
    answers = cache.load(request_key(r) for p in plans for reqs in p.requests for r in reqs)
    cache.close()

    task_results = {}
    for plan in plans:
        task_results[plan.spec.name] = _score_task(plan, answers, run_dir, cfg)
    results = {
        "evalkit_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config_hash": config_hash(cfg),
        "suite": cfg["suite"]["name"],
        "model": {**backend.fingerprint(), "label": cfg["model"].get("name")},
        "prompting": chat.describe(),
        "data_root": str(root) if root else "hub",
        "limit": cfg.get("limit"),
        "seed": cfg["seed"],
        "packages": _versions(),
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()},
        "timing": {
            "wall_seconds": round(time.perf_counter() - t_start, 3),
            "model_load_seconds": round(backend.stats.load_seconds, 3),
            "request_seconds": {k: round(v, 3) for k, v in stats["seconds"].items()},
        },
        "tokens": {"forward": backend.stats.forward_tokens, "generated": backend.stats.generated_tokens,
                   "forward_calls": backend.stats.forward_calls, **backend.stats.extra},
        "requests": stats["counts"],
        "tasks": task_results,
    }
    atomic_write_json(run_dir / RESULTS, results)
    log.info("results: %s", run_dir / RESULTS)
    return run_dir


def _answer_all(plans: list[TaskPlan], backend: Backend, cache: RequestCache, progress: bool) -> dict[str, Any]:
    """Send every not-yet-answered unique request to the backend, one bulk call per kind."""
    owner: dict[str, TaskPlan] = {}  # the first task that asked; it is charged the time
    unique: dict[str, Request] = {}
    total = 0
    for plan in plans:
        for reqs in plan.requests:
            for r in reqs:
                total += 1
                k = request_key(r)
                if k not in unique:
                    unique[k] = r
                    owner[k] = plan
    done = set(cache.get_many(unique))
    pending: dict[str, list[tuple[str, Request]]] = defaultdict(list)
    for k, r in unique.items():
        if k not in done:
            pending[r.kind].append((k, r))
    counts = {"total": total, "unique": len(unique), "from_cache": len(done), "computed": 0}
    seconds: dict[str, float] = {}
    if done:
        log.info("resuming: %d of %d unique requests already answered", len(done), len(unique))
    for kind in ("loglikelihood", "rolling", "generate"):
        items = pending.get(kind)
        if not items:
            continue
        keys = [k for k, _ in items]
        method = getattr(backend, _KIND_METHOD[kind])
        t0 = last = time.perf_counter()
        with tqdm(total=len(items), desc=f"{kind} requests", unit="req", disable=not progress,
                  dynamic_ncols=True, mininterval=1.0, file=sys.stderr) as bar:
            for i, result in method([r for _, r in items]):
                now = time.perf_counter()
                cache.put(keys[i], kind, result)
                # The first answer of a batch carries the batch's time.
                owner[keys[i]].seconds += now - last
                last = now
                counts["computed"] += 1
                bar.update(1)
        cache.commit()
        seconds[kind] = time.perf_counter() - t0
    return {"counts": counts, "seconds": seconds}


def _score_task(plan: TaskPlan, answers: dict, run_dir: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    spec = plan.spec
    records = [build_record(spec, s, reqs, answers) for s, reqs in zip(plan.samples, plan.requests)]
    judge_info = run_judge(spec.raw["judge"], records, cfg) if spec.raw.get("judge") else None
    metrics = compute_metrics(records, spec.metrics, spec.raw.get("aggregate", "micro"))
    atomic_write_jsonl(run_dir / SAMPLES / f"{spec.name}.jsonl", records)
    out = {
        "hash": spec.hash,
        "card": spec.card,
        "type": spec.type,
        "primary": spec.primary,
        "higher_is_better": {key: _higher_is_better(name) for key, name in spec.metric_keys.items()},
        # How each metric was computed, so `evalkit compare` can recompute aggregate-only metrics on resamples.
        "metric_specs": spec.metrics,
        "aggregate": spec.raw.get("aggregate", "micro"),
        "metrics": {
            name: {"value": r.value, "stderr": r.stderr, "n": r.n, "breakdown": r.breakdown, **({"extra": r.extra} if r.extra else {})}
            for name, r in metrics.items()
        },
        "n": len(records),
        "fewshot": {"n": spec.fewshot["n"], "shared": spec.fewshot["shared"], "select": spec.fewshot["select"],
                    "seed": spec.fewshot["seed"], "ids": plan.data.get("fewshot_ids", [])},
        "data": {"fingerprint": plan.data["fingerprint"], "n_available": plan.data["n_docs"]},
        "limit": spec.limit or cfg.get("limit"),
        "groups": spec.groups,
        "attributed_seconds": round(plan.seconds, 3),
        "samples_file": f"{SAMPLES}/{spec.name}.jsonl",
    }
    if judge_info:
        out["judge"] = judge_info
    return out


def _higher_is_better(name: str) -> bool:
    from evalkit.metrics import METRICS

    return METRICS[name].higher_is_better


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "evalkit": __version__}
    for pkg in _PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out
