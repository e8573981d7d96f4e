"""``executor=ray``: answer a plan on Ray workers, then score once in this process.

One actor per worker loads the model once. The plan is made once (on the first worker,
which holds the model's chat template) and cut into more shards than workers; idle
workers pull the next shard, so a slow worker holds nothing back. Each worker appends
to its own ``cache/ray-<i>.sqlite``; a worker that dies (process killed, node lost)
has its unfinished shard handed to the others, which skip whatever it had already
committed. The run folder must be on a filesystem every node sees.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evalkit.backends import Request
from evalkit.errors import ConfigError, EvalkitError
from evalkit.files import atomic_write_json
from evalkit.runner.plan import Plan, TaskPlan, index_requests
from evalkit.runner.planfile import save_plan
from evalkit.runner.prompting import ChatSettings
from evalkit.runner.shard import Shard, make_shards
from evalkit.runner.sharded import merge_metas
from evalkit.rundir import ANSWER

log = logging.getLogger("evalkit")


class RayWorker:
    """One Ray worker: the model, loaded once, and its own cache file."""

    def __init__(self, model_cfg: dict[str, Any], run_dir: str, name: str) -> None:
        from evalkit.backends.registry import build_backend

        self.name, self.run_dir = name, Path(run_dir)
        self.backend = build_backend(model_cfg)

    def info(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def plan(self, tasks: list[TaskPlan], chat: ChatSettings, seed: int) -> list[list[list[Request]]]:
        """Every task's per-sample requests (rendered with this worker's chat template)."""
        from evalkit.runner.prompting import sample_requests

        return [[sample_requests(s, t.spec, chat, self.backend, seed) for s in t.samples] for t in tasks]

    def answer(self, items: dict[str, Request], owner: dict[str, str]) -> dict[str, Any]:
        """Answer one shard; returns its counters (work counters as this shard's delta)."""
        from evalkit.runner.answer import answer_keys, work_counters
        from evalkit.runner.cache import RequestCache
        from evalkit.runner.cachedir import CacheSet, worker_cache_path

        before = work_counters(self.backend)
        cache = RequestCache(worker_cache_path(self.run_dir, self.name))
        try:
            stats = answer_keys(items, owner, self.backend, cache, False, CacheSet(self.run_dir))
        finally:
            cache.close()
        after = work_counters(self.backend)
        stats["tokens"] = {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, (int, float))}
        stats["model"] = self.backend.fingerprint()
        stats["model_load_seconds"] = self.backend.stats.load_seconds
        return stats


def ray_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``executor`` settings of ``executor=ray``, checked (one line per mistake)."""
    ex = {"address": "local", "workers": 2, "cpus_per_worker": 1, "gpus_per_worker": 0, "shards_per_worker": 4,
          "object_store_mb": None, **(cfg.get("executor") or {})}
    for key in ("workers", "shards_per_worker"):
        if not isinstance(ex[key], int) or isinstance(ex[key], bool) or ex[key] < 1:
            raise ConfigError(f"executor.{key} must be a positive integer (got {ex[key]!r})")
    for key in ("cpus_per_worker", "gpus_per_worker"):
        if not isinstance(ex[key], (int, float)) or isinstance(ex[key], bool) or ex[key] < 0:
            raise ConfigError(f"executor.{key} must be a number >= 0 (got {ex[key]!r})")
    addr = ex["address"]
    if not isinstance(addr, str) or not (addr in ("local", "auto") or addr.startswith("ray://") or ":" in addr):
        raise ConfigError(f"executor.address must be local, auto, ray://host:port or host:port (got {addr!r})")
    return ex


def _connect(ex: dict[str, Any]) -> bool:
    """Join or start Ray; True when this call started it (and must shut it down)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("executor=ray needs Ray: pip install 'evalkit[ray]' (or executor=local)") from None
    if ray.is_initialized():  # a caller (a test cluster, a notebook) already connected
        return False
    opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if ex["address"] == "local":
        # "local" starts a private instance even when another Ray cluster runs on this
        # machine; without it ray.init() joins whatever /tmp/ray/ray_current_cluster names.
        opts["address"] = "local"
        opts["num_cpus"] = max(1, int(ex["workers"] * ex["cpus_per_worker"]))
        if ex["object_store_mb"]:
            opts["object_store_memory"] = int(ex["object_store_mb"]) * 2**20
    else:
        opts["address"] = ex["address"]
    ray.init(**opts)
    return True


def answer_with_ray(tasks: list[TaskPlan], chat: ChatSettings, run_dir: Path, cfg: dict[str, Any],
                    on_shard_done: Callable[[str, dict[str, dict[str, Any]]], None] | None = None) -> Plan:
    """Plan on a worker, answer every shard on the workers, write ``answer.json``; returns the plan.

    ``on_shard_done(worker, infos)`` is called after each finished shard with every live
    worker's ``{"pid", "node"}`` (progress hooks; the fault test kills a worker there).
    """
    import ray

    ex = ray_settings(cfg)
    started = _connect(ex)
    actor_cls = ray.remote(max_restarts=0, max_task_retries=0)(RayWorker)
    names = [f"ray-{i}" for i in range(ex["workers"])]
    actors = {n: actor_cls.options(num_cpus=ex["cpus_per_worker"], num_gpus=ex["gpus_per_worker"])
              .remote(cfg["model"], str(run_dir), n) for n in names}
    try:
        infos = dict(zip(names, ray.get([a.info.remote() for a in actors.values()])))
        planner = next(iter(actors.values()))
        for task, reqs in zip(tasks, ray.get(planner.plan.remote(tasks, chat, cfg["seed"]))):
            task.requests = reqs
        plan = index_requests(tasks)
        save_plan(plan, run_dir)
        shards = [s for s in make_shards(plan, ex["workers"] * ex["shards_per_worker"], cut_share=ex["workers"]) if s.keys]
        metas = _pull_loop(plan, shards, actors, infos, cfg.get("progress", True), on_shard_done)
    finally:
        for a in actors.values():
            ray.kill(a)
        if started:
            ray.shutdown()
    # A worker lost before finishing any shard answered nothing to merge, but is counted.
    meta = merge_metas({n: m for n, m in metas.items() if m["model"] is not None}, plan)
    meta["model"]["label"] = cfg["model"].get("name")
    for name in meta["workers"]:
        meta["workers"][name].update({k: metas[name][k] for k in ("node", "shards", "lost")})
    meta["workers_lost"] = sum(1 for m in metas.values() if m["lost"])
    meta["shards_reassigned"] = sum(m["reassigned"] for m in metas.values())
    atomic_write_json(run_dir / ANSWER, meta)
    return plan


def _pull_loop(plan: Plan, shards: list[Shard], actors: dict[str, Any], infos: dict[str, dict[str, Any]],
               progress: bool, on_shard_done: Callable[..., None] | None) -> dict[str, dict[str, Any]]:
    """Hand shards to idle workers until all are answered; a dead worker's shard goes back in the queue."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    queue: deque[Shard] = deque(shards)
    alive = dict(actors)
    idle = list(alive)
    running: dict[Any, tuple[str, Shard]] = {}
    metas = {n: {"model": None, "model_load_seconds": 0.0, "request_seconds": {}, "task_seconds": {},
                 "tokens": {}, "requests": {}, "node": infos[n]["node"], "shards": 0, "lost": False,
                 "reassigned": 0} for n in actors}
    with tqdm(total=len(plan.unique), desc=f"requests ({len(actors)} Ray workers)", unit="req",
              disable=not progress, dynamic_ncols=True, file=sys.stderr) as bar:
        while queue or running:
            while queue and idle:
                name, shard = idle.pop(0), queue.popleft()
                items = {k: plan.unique[k] for k in shard.keys}
                running[alive[name].answer.remote(items, {k: plan.owner[k] for k in shard.keys})] = (name, shard)
            if not running:
                raise EvalkitError("every Ray worker died; answers so far are kept: rerun the same command to resume")
            (ref,), _ = ray.wait(list(running), num_returns=1)
            name, shard = running.pop(ref)
            try:
                stats = ray.get(ref)
            except RayTaskError:
                raise  # an error in evalkit's own code, not a lost worker
            except RayError as e:
                log.warning("Ray worker %s lost (%s); its %s goes to the others", name, type(e).__name__, shard.name)
                alive.pop(name, None)
                metas[name]["lost"] = True
                queue.appendleft(shard)
                metas[next(iter(alive), name)]["reassigned"] += 1
                continue
            _add(metas[name], stats)
            bar.update(len(shard.keys))
            idle.append(name)
            if on_shard_done:
                on_shard_done(name, {n: infos[n] for n in alive})
    return metas


def _add(meta: dict[str, Any], stats: dict[str, Any]) -> None:
    """Add one shard's counters to its worker's totals."""
    meta["model"] = stats["model"]
    meta["model_load_seconds"] = stats["model_load_seconds"]
    meta["shards"] += 1
    for field, src in (("request_seconds", "seconds"), ("task_seconds", "task_seconds"), ("tokens", "tokens"),
                       ("requests", "counts")):
        for k, v in stats[src].items():
            meta[field][k] = meta[field].get(k, 0) + v
