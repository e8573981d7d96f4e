"""Answer a plan's requests: skip those already in the resume cache, send the rest to the
backend in one bulk call per kind, and record in the run folder what scoring needs to
know of the model (``answer.json``: fingerprint, work counters, timing), so scoring and
``results.json`` need no live backend.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evalkit.backends import Backend, Request
from evalkit.errors import EvalkitError
from evalkit.files import atomic_write_json
from evalkit.runner.cache import RequestCache
from evalkit.runner.cachedir import CacheSet, worker_cache_path
from evalkit.runner.plan import Plan
from evalkit.rundir import ANSWER, CACHE

log = logging.getLogger("evalkit")

class RequestsFailed(EvalkitError):
    """Some requests failed for good; every other answer is saved for the next run."""


_KIND_METHOD = {"loglikelihood": "loglikelihood", "rolling": "loglikelihood_rolling", "generate": "generate"}


def answer_plan(plan: Plan, backend: Backend, run_dir: Path, cfg: dict[str, Any],
                keys: Collection[str] | None = None, worker: str | None = None,
                meta_path: Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Answer the plan's requests (only ``keys`` of them when given), then write
    ``meta_path`` (default ``answer.json``); returns its content. Ctrl-C keeps what was answered.

    Answers already in any cache file of the folder are not recomputed; new ones go to
    ``requests.sqlite``, or to ``cache/<worker>.sqlite`` when ``worker`` is given.
    """
    path = run_dir / CACHE if worker is None else worker_cache_path(run_dir, worker)
    cache = RequestCache(path)
    try:
        stats = answer_requests(plan, backend, cache, cfg.get("progress", True), keys, CacheSet(run_dir))
    except KeyboardInterrupt:
        cache.close()
        print(f"\ninterrupted: answers so far are saved in {path}; "
              "run the same command again to resume", file=sys.stderr)
        raise SystemExit(130) from None
    cache.close()
    c = stats["counts"]
    if c["failed"]:
        first = (getattr(backend, "failures", None) or ["see the log above"])[0]
        raise RequestsFailed(f"{c['failed']} of {c['unique']} requests failed (first: {first}); the other "
                             f"{c['unique'] - c['failed']} answers are saved in {path}: run the same "
                             "command again to retry only the failed ones")
    meta = {**answer_meta(backend, cfg, stats), **(extra or {})}
    atomic_write_json(meta_path or run_dir / ANSWER, meta)
    return meta


def work_counters(backend: Backend) -> dict[str, Any]:
    """The backend's work counters so far (tokens, forward calls, prefix reuse, ...)."""
    s = backend.stats
    return {"forward": s.forward_tokens, "generated": s.generated_tokens, "forward_calls": s.forward_calls, **s.extra}


def answer_meta(backend: Backend, cfg: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """What scoring needs of the model and of the answering (the content of ``answer.json``)."""
    return {
        "model": {**backend.fingerprint(), "label": cfg["model"].get("name")},
        "model_load_seconds": round(backend.stats.load_seconds, 3),
        "request_seconds": {k: round(v, 3) for k, v in stats["seconds"].items()},
        "task_seconds": {k: round(v, 3) for k, v in stats["task_seconds"].items()},
        "tokens": work_counters(backend),
        "requests": stats["counts"],
    }


def answer_requests(plan: Plan, backend: Backend, cache: RequestCache, progress: bool,
                    keys: Collection[str] | None = None, known: CacheSet | None = None) -> dict[str, Any]:
    """Send every not-yet-answered unique request (among ``keys`` if given) to the
    backend, one bulk call per kind; each answer is cached as it arrives. ``known`` is
    where earlier answers are looked up (default: ``cache`` itself)."""
    wanted = plan.unique if keys is None else {k: plan.unique[k] for k in keys if k in plan.unique}
    stats = answer_keys(wanted, plan.owner, backend, cache, progress, known)
    stats["counts"] = {"total": plan.total, **stats["counts"]}
    stats["task_seconds"] = {t.spec.name: stats["task_seconds"].get(t.spec.name, 0.0) for t in plan.tasks}
    return stats


def answer_keys(wanted: dict[str, Request], owner: dict[str, str], backend: Backend, cache: RequestCache,
                progress: bool, known: CacheSet | RequestCache | None = None,
                on_answer: Callable[[], None] | None = None) -> dict[str, Any]:
    """Answer ``wanted`` (key -> request) except what ``known`` already holds; ``owner``
    names the task charged each request's time. Returns counts and seconds."""
    done = set((known or cache).get_many(wanted))
    pending: dict[str, list[tuple[str, Request]]] = defaultdict(list)
    for k, r in wanted.items():
        if k not in done:
            pending[r.kind].append((k, r))
    counts = {"unique": len(wanted), "from_cache": len(done), "computed": 0, "failed": 0}
    seconds: dict[str, float] = {}
    task_seconds: dict[str, float] = defaultdict(float)
    if done:
        log.info("resuming: %d of %d unique requests already answered", len(done), len(wanted))
    for kind in ("loglikelihood", "rolling", "generate"):
        items = pending.get(kind)
        if not items:
            continue
        method = getattr(backend, _KIND_METHOD[kind])
        t0 = last = time.perf_counter()
        answered = 0
        with tqdm(total=len(items), desc=f"{kind} requests", unit="req", disable=not progress,
                  dynamic_ncols=True, mininterval=1.0, file=sys.stderr) as bar:
            for i, result in method([r for _, r in items]):
                now = time.perf_counter()
                key = items[i][0]
                cache.put(key, kind, result)
                # The first answer of a batch carries the batch's time.
                task_seconds[owner[key]] += now - last
                last = now
                counts["computed"] += 1
                answered += 1
                bar.update(1)
                if on_answer:
                    on_answer()
        cache.commit()
        # A backend leaves out a request that failed for good (after its retries): it is
        # not cached, so the same command asks for it again.
        counts["failed"] += len(items) - answered
        seconds[kind] = time.perf_counter() - t0
    return {"counts": counts, "seconds": seconds, "task_seconds": dict(task_seconds)}
