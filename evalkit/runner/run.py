"""Run a suite: plan -> answer -> score, into one run folder (see ``evalkit.rundir``)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml

from evalkit.backends import Backend
from evalkit.backends.registry import backend_class, backend_name, build_backend
from evalkit.config import data_root as resolve_data_root
from evalkit.config import validate
from evalkit.errors import ConfigError
from evalkit.files import atomic_write_text
from evalkit.runner.answer import answer_plan
from evalkit.runner.lock import RunLock
from evalkit.runner.plan import build_task_plans, chat_settings, check_capabilities, load_specs, plan_requests
from evalkit.runner.planfile import save_plan
from evalkit.runner.score import score_run
from evalkit.runner.shard import shard_settings
from evalkit.runner.sharded import answer_shard
from evalkit.rundir import CACHE, CONFIG, run_dir_for

log = logging.getLogger("evalkit")


def run(cfg: dict[str, Any], backend: Backend | None = None) -> Path:
    """Run the suite ``cfg`` describes and return its run folder.

    ``cfg`` is the resolved config (plain dict). ``backend`` may be passed in to reuse a
    loaded model (tests, multi-suite scripts); otherwise it is built from ``cfg["model"]``.
    """
    validate(cfg)
    executor_name(cfg)
    t_start = time.perf_counter()
    run_dir = run_dir_for(cfg)
    fresh = not run_dir.exists()  # a run that fails before its first answer leaves no folder behind
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        # One writer per folder (per shard in shard mode: each shard writes its own cache
        # file), for the whole run; released on return, error or Ctrl-C.
        index = shard_settings(cfg)[1]
        lock_name = ".lock" if index is None else f".lock-shard-{index}"
        with RunLock(run_dir, wait=bool(cfg.get("wait_for_lock", False)), name=lock_name):
            return _run_locked(cfg, backend, run_dir, t_start)
    except BaseException:
        if fresh and not _has_answers(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _has_answers(run_dir: Path) -> bool:
    """Whether any cache file of the folder holds an answer (then the folder is worth keeping)."""
    for path in [run_dir / CACHE, *sorted((run_dir / "cache").glob("*.sqlite"))]:
        if not path.exists():
            continue
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                if db.execute("SELECT 1 FROM answers LIMIT 1").fetchone():
                    return True
            finally:
                db.close()
        except sqlite3.Error:
            return True  # unreadable: keep it rather than delete what might be answers
    return False


def _run_locked(cfg: dict[str, Any], backend: Backend | None, run_dir: Path, t_start: float) -> Path:
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    root = resolve_data_root(cfg.get("data_root"))

    # Everything that can fail without the model fails before it loads.
    specs = load_specs(cfg)
    chat = chat_settings(cfg)
    caps = type(backend).capabilities if backend else backend_class(cfg["model"]).capabilities
    check_capabilities(specs, chat, caps, backend_name(cfg["model"]))
    tasks = build_task_plans(specs, root, cfg.get("limit"))

    count, index = shard_settings(cfg)
    if executor_name(cfg) == "ray":
        from evalkit.runner.ray_executor import answer_with_ray

        plan = answer_with_ray(tasks, chat, run_dir, cfg)
    else:
        backend = backend or build_backend(cfg["model"])
        require_kinds(backend, specs)
        plan = plan_requests(tasks, chat, backend, cfg["seed"])
        save_plan(plan, run_dir)
        if index is not None:
            answer_shard(plan, backend, run_dir, cfg, count, index)
            return run_dir  # scored once, by `evalkit merge`
        answer_plan(plan, backend, run_dir, cfg)
    score_run(plan, run_dir, cfg, root, wall_start=t_start)
    return run_dir


def require_kinds(backend: Backend, specs: list) -> None:
    """Let a backend that can only tell once it is live (an HTTP server that may not return
    log-probs) refuse the suite before any work, naming the tasks."""
    require = getattr(backend, "require", None)
    if require is not None:
        kinds: dict[str, list[str]] = {}
        for spec in specs:
            kinds.setdefault(_REQUEST_KIND[spec.type], []).append(spec.name)
        require(kinds)


_REQUEST_KIND = {"multiple_choice": "loglikelihood", "rolling": "rolling", "generate": "generate"}


def executor_name(cfg: dict[str, Any]) -> str:
    """``executor.name`` checked: local or ray (shard mode is for the local executor)."""
    name = (cfg.get("executor") or {}).get("name", "local")
    if name not in ("local", "ray"):
        raise ConfigError(f"executor={name}: no such executor; choose one of: local, ray")
    if name == "ray" and shard_settings(cfg)[1] is not None:
        raise ConfigError("shard.index is for executor=local (one process per shard); drop it to let Ray spread the shards")
    return str(name)
