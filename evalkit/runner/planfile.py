"""The plan's requests saved in the run folder (``plan.json.gz``), so whoever scores a
sharded run (``evalkit merge``) needs no model: prompts rendered with a chat template
were rendered once, by the process that planned.

Contexts repeat (every choice of a question, every item behind one few-shot prefix),
so each distinct string is stored once and requests point at it.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evalkit.backends.requests import GenerateRequest, LoglikelihoodRequest, Request, RollingRequest
from evalkit.errors import EvalkitError
from evalkit.files import atomic_write_bytes
from evalkit.runner.plan import Plan, TaskPlan, index_requests

PLAN_FILE = "plan.json.gz"
_TEXT_FIELDS = ("context", "text")
_TYPES = {"loglikelihood": LoglikelihoodRequest, "rolling": RollingRequest, "generate": GenerateRequest}


def save_plan(plan: Plan, run_dir: Path) -> Path:
    """Write every task's per-sample requests (and sample ids, to check them on load)."""
    strings: dict[str, int] = {}
    tasks: dict[str, Any] = {}
    for task in plan.tasks:
        rows = []
        for reqs in task.requests:
            row = []
            for r in reqs:
                d: dict[str, Any] = {"kind": r.kind, **asdict(r)}
                for f in _TEXT_FIELDS:
                    if f in d:
                        d[f] = strings.setdefault(d[f], len(strings))
                row.append(d)
            rows.append(row)
        tasks[task.spec.name] = {"ids": [s.id for s in task.samples], "requests": rows}
    doc = {"version": 1, "strings": list(strings), "tasks": tasks}
    path = run_dir / PLAN_FILE
    # mtime=0: the same plan gives the same bytes.
    atomic_write_bytes(path, gzip.compress(json.dumps(doc, ensure_ascii=False).encode(), mtime=0))
    return path


def load_plan(tasks: list[TaskPlan], run_dir: Path) -> Plan:
    """Fill ``tasks``' requests from the saved plan and index them."""
    path = run_dir / PLAN_FILE
    if not path.exists():
        raise EvalkitError(f"{run_dir} has no {PLAN_FILE}: no shard of it was run; run its shards first")
    doc = json.loads(gzip.decompress(path.read_bytes()))
    strings = doc["strings"]
    for task in tasks:
        saved = doc["tasks"].get(task.spec.name)
        if saved is None or saved["ids"] != [s.id for s in task.samples]:
            raise EvalkitError(f"{path}: task {task.spec.name} does not match its data any more "
                               "(data or config changed since the shards ran); rerun the shards")
        task.requests = [[_request(d, strings) for d in row] for row in saved["requests"]]
    return index_requests(tasks)


def _request(d: dict[str, Any], strings: list[str]) -> Request:
    d = dict(d)
    cls = _TYPES[d.pop("kind")]
    for f in _TEXT_FIELDS:
        if f in d:
            d[f] = strings[d[f]]
    if "stop" in d:
        d["stop"] = tuple(d["stop"])
    return cls(**d)
