"""Shard mode and merge: any scheduler runs ``shard.index=i`` of ``shard.count=N`` as N
separate processes (a SLURM array, a Kubernetes indexed job, N shells); each answers its
shard into its own cache file and leaves ``shards/<shard>.json`` once complete. ``merge``
checks every shard is there, then scores once (judges and report included).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from evalkit.backends import Backend
from evalkit.config import data_root as resolve_data_root
from evalkit.errors import EvalkitError
from evalkit.files import atomic_write_json, read_json
from evalkit.runner.answer import answer_plan
from evalkit.runner.plan import Plan, build_task_plans, load_specs
from evalkit.runner.planfile import load_plan
from evalkit.runner.score import score_run
from evalkit.runner.shard import Shard, make_shards, shard_settings
from evalkit.rundir import ANSWER, CONFIG

log = logging.getLogger("evalkit")

SHARDS_DIR = "shards"


def shard_marker(run_dir: Path, index: int, count: int) -> Path:
    """The file a shard leaves when all its requests are answered (its answer.json)."""
    return run_dir / SHARDS_DIR / f"shard-{index}-of-{count}.json"


def answer_shard(plan: Plan, backend: Backend, run_dir: Path, cfg: dict[str, Any], count: int,
                 index: int) -> dict[str, Any]:
    """Answer shard ``index`` of ``count`` into ``cache/<shard>.sqlite``; no scoring."""
    shard = make_shards(plan, count)[index]
    log.info("%s: %d of %d unique requests, ~%d tokens, %d groups", shard.name, len(shard.keys),
             len(plan.unique), shard.tokens, len(shard.groups))
    return answer_plan(plan, backend, run_dir, cfg, keys=shard.keys, worker=shard.name,
                       meta_path=shard_marker(run_dir, index, count), extra={"shard": describe(shard)})


def describe(shard: Shard) -> dict[str, Any]:
    return {"index": shard.index, "count": shard.count, "keys": len(shard.keys), "est_tokens": shard.tokens,
            "groups": len(shard.groups)}


def merge_metas(metas: dict[str, dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """One ``answer.json`` from the workers' own (``worker name -> meta``): counters summed,
    per-worker counters kept under ``workers``."""
    first = next(iter(metas.values()))
    for name, m in metas.items():
        if m["model"] != first["model"]:
            raise EvalkitError(f"{name} answered with a different model ({m['model'].get('label')}); "
                               "rerun that shard with the run's model")

    def total(field: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in metas.values():
            for k, v in m[field].items():
                if isinstance(v, (int, float)):
                    out[k] = out.get(k, 0) + v
        return out

    requests = total("requests")
    requests["total"] = plan.total
    return {
        "model": first["model"],
        "model_load_seconds": max(m["model_load_seconds"] for m in metas.values()),
        "request_seconds": {k: round(v, 3) for k, v in total("request_seconds").items()},
        "task_seconds": {t.spec.name: round(total("task_seconds").get(t.spec.name, 0.0), 3) for t in plan.tasks},
        "tokens": total("tokens"),
        "requests": requests,
        "workers": {name: {"tokens": m["tokens"], "requests": m["requests"], **({"shard": m["shard"]} if "shard" in m else {})}
                    for name, m in metas.items()},
    }


def merge_run(run_dir: Path) -> dict[str, Any]:
    """Check every shard of ``run_dir`` is complete, then score once; returns the results."""
    if not (run_dir / CONFIG).exists():
        raise EvalkitError(f"{run_dir} is not a run folder (no {CONFIG}); pass the folder the shards wrote")
    cfg = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8"))
    count, _ = shard_settings(cfg)
    missing = [i for i in range(count) if not shard_marker(run_dir, i, count).exists()]
    if missing:
        names = ", ".join(str(i) for i in missing)
        raise EvalkitError(f"{run_dir}: shard {names} of shard.count={count} not complete "
                           f"(no {SHARDS_DIR}/shard-{missing[0]}-of-{count}.json); run the same command with "
                           f"shard.index={missing[0]}, then merge again")
    root = resolve_data_root(cfg.get("data_root"))
    plan = load_plan(build_task_plans(load_specs(cfg), root, cfg.get("limit")), run_dir)
    metas = {f"shard-{i}-of-{count}": read_json(shard_marker(run_dir, i, count)) for i in range(count)}
    atomic_write_json(run_dir / ANSWER, merge_metas(metas, plan))
    return score_run(plan, run_dir, cfg, root)
