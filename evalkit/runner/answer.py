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
from collections.abc import Collection
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evalkit.backends import Backend, Request
from evalkit.files import atomic_write_json
from evalkit.runner.cache import RequestCache
from evalkit.runner.plan import Plan
from evalkit.rundir import ANSWER, CACHE

log = logging.getLogger("evalkit")

_KIND_METHOD = {"loglikelihood": "loglikelihood", "rolling": "loglikelihood_rolling", "generate": "generate"}


def answer_plan(plan: Plan, backend: Backend, run_dir: Path, cfg: dict[str, Any],
                keys: Collection[str] | None = None) -> dict[str, Any]:
    """Answer the plan's requests (only ``keys`` of them when given) into the run folder's
    cache, then write ``answer.json``; returns its content. Ctrl-C keeps what was answered."""
    cache = RequestCache(run_dir / CACHE)
    try:
        stats = answer_requests(plan, backend, cache, cfg.get("progress", True), keys)
    except KeyboardInterrupt:
        cache.close()
        print(f"\ninterrupted: answers so far are saved in {run_dir / CACHE}; "
              "run the same command again to resume", file=sys.stderr)
        raise SystemExit(130) from None
    cache.close()
    s = backend.stats
    meta = {
        "model": {**backend.fingerprint(), "label": cfg["model"].get("name")},
        "model_load_seconds": round(s.load_seconds, 3),
        "request_seconds": {k: round(v, 3) for k, v in stats["seconds"].items()},
        "task_seconds": {k: round(v, 3) for k, v in stats["task_seconds"].items()},
        "tokens": {"forward": s.forward_tokens, "generated": s.generated_tokens,
                   "forward_calls": s.forward_calls, **s.extra},
        "requests": stats["counts"],
    }
    atomic_write_json(run_dir / ANSWER, meta)
    return meta


def answer_requests(plan: Plan, backend: Backend, cache: RequestCache, progress: bool,
                    keys: Collection[str] | None = None) -> dict[str, Any]:
    """Send every not-yet-answered unique request (among ``keys`` if given) to the
    backend, one bulk call per kind; each answer is cached as it arrives."""
    wanted = plan.unique if keys is None else {k: plan.unique[k] for k in keys if k in plan.unique}
    done = set(cache.get_many(wanted))
    pending: dict[str, list[tuple[str, Request]]] = defaultdict(list)
    for k, r in wanted.items():
        if k not in done:
            pending[r.kind].append((k, r))
    counts = {"total": plan.total, "unique": len(wanted), "from_cache": len(done), "computed": 0}
    seconds: dict[str, float] = {}
    task_seconds: dict[str, float] = {t.spec.name: 0.0 for t in plan.tasks}
    if done:
        log.info("resuming: %d of %d unique requests already answered", len(done), len(wanted))
    for kind in ("loglikelihood", "rolling", "generate"):
        items = pending.get(kind)
        if not items:
            continue
        method = getattr(backend, _KIND_METHOD[kind])
        t0 = last = time.perf_counter()
        with tqdm(total=len(items), desc=f"{kind} requests", unit="req", disable=not progress,
                  dynamic_ncols=True, mininterval=1.0, file=sys.stderr) as bar:
            for i, result in method([r for _, r in items]):
                now = time.perf_counter()
                key = items[i][0]
                cache.put(key, kind, result)
                # The first answer of a batch carries the batch's time.
                task_seconds[plan.owner[key]] += now - last
                last = now
                counts["computed"] += 1
                bar.update(1)
        cache.commit()
        seconds[kind] = time.perf_counter() - t0
    return {"counts": counts, "seconds": seconds, "task_seconds": task_seconds}
