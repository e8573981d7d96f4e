"""Choosing what a run runs: ``tasks=a,b`` and per-task settings that never add a task.

``tasks`` (top-level key) replaces the suite's task list: each chosen task keeps the
suite's settings for it when the suite lists it, and the run is named after what it ran
(``custom-a-b``), not after the suite it started from. A per-task setting
(``suite.tasks.<task>.<key>=v``) for a task the run does not include is an error, never a
silently added task.
"""

from __future__ import annotations

import re
from typing import Any

from evalkit.errors import ConfigError
from evalkit.tasks.spec import available_tasks

_TASK_SETTING = re.compile(r"^\+{0,2}suite\.tasks\.([^.=]+)\.[^=]+=")
_MAX_NAMED = 4  # a longer selection is named by its size and a short hash


def task_list(value: Any) -> list[str]:
    """``tasks`` as a list of names (a list, or a comma-separated string)."""
    names = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    known = set(available_tasks())
    for n in names:
        if n not in known:
            raise ConfigError(f"tasks={','.join(names)}: unknown task {n!r}; available: {', '.join(sorted(known))}")
    if not names:
        raise ConfigError("tasks= is empty; give task names, e.g. tasks=arc_easy,gsm8k (see `evalkit tasks`)")
    return list(dict.fromkeys(names))


def select_tasks(cfg: dict[str, Any]) -> dict[str, Any]:
    """Apply the top-level ``tasks`` key to ``cfg["suite"]`` (in place) and drop the key."""
    chosen = cfg.pop("tasks", None)
    suite = cfg["suite"]
    if chosen is not None:
        names = task_list(chosen)
        listed = suite.get("tasks") or {}
        suite["tasks"] = {n: listed.get(n) or {} for n in names}
        suite["name"] = suite_name(names)
    elif not suite.get("tasks"):
        raise ConfigError(f"suite={suite.get('name')} lists no tasks; choose them with tasks=a,b (see `evalkit tasks`)")
    _cap_generation(cfg)
    return cfg


def _cap_generation(cfg: dict[str, Any]) -> None:
    """``max_gen_toks``: lower every generation task's ``max_new_tokens`` to the cap, as a
    per-task setting, so the task hash (and hence compare) sees the change."""
    from evalkit.tasks.spec import load_task

    cap = cfg.get("max_gen_toks")
    if cap is None:
        return
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise ConfigError(f"max_gen_toks must be a positive integer or null (got {cap!r})")
    for name, settings in cfg["suite"]["tasks"].items():
        settings = dict(settings or {})
        spec = load_task(name, settings)
        if spec.type == "generate" and spec.generation["max_new_tokens"] > cap:
            settings["generation"] = {**(settings.get("generation") or {}), "max_new_tokens": cap}
        cfg["suite"]["tasks"][name] = settings


def suite_name(names: list[str]) -> str:
    """The name of a chosen task list, used in the run folder's name."""
    if len(names) <= _MAX_NAMED:
        return "custom-" + "-".join(names)
    import hashlib

    return f"custom-{len(names)}-tasks-{hashlib.sha256(','.join(names).encode()).hexdigest()[:6]}"


def check_task_settings(overrides: list[str], cfg: dict[str, Any], base_tasks: list[str]) -> None:
    """Refuse ``suite.tasks.<task>.<key>=v`` when ``<task>`` is not run.

    ``base_tasks``: the suite's tasks before the per-task settings were applied; ``cfg``:
    the composed config (its ``tasks`` key, when set, is the explicit choice)."""
    chosen = task_list(cfg["tasks"]) if cfg.get("tasks") is not None else None
    runs = chosen if chosen is not None else base_tasks
    for o in overrides:
        m = _TASK_SETTING.match(o)
        if m and m.group(1) not in available_tasks():
            raise ConfigError(f"suite.tasks.{m.group(1)}: unknown task; available: {', '.join(available_tasks())}")
        if m and m.group(1) not in runs:
            what = f"tasks={','.join(chosen)}" if chosen is not None else f"suite {cfg['suite'].get('name')}"
            raise ConfigError(f"{o.lstrip('+')}: {m.group(1)} is not run by {what} (it runs: {', '.join(runs) or 'nothing'}); "
                              f"to run it, list it in tasks=, e.g. tasks={','.join([*runs, m.group(1)])}")


def is_task_setting(override: str) -> bool:
    return bool(_TASK_SETTING.match(override))


def cli_tasks_override(o: str, multirun: bool) -> str:
    """``tasks=a,b`` as one list (Hydra reads a bare comma list as a sweep); under
    ``--multirun`` it stays a sweep, one run per task."""
    if multirun or not o.startswith("tasks=") or o.startswith("tasks=["):
        return o
    return f"tasks=[{o.split('=', 1)[1]}]"


def refuse_suite_tasks_merge(o: str) -> None:
    """``suite.tasks={...}`` merges into the suite's tasks rather than replacing them."""
    if re.match(r"^suite\.tasks=", o):
        raise ConfigError(f"{o}: this merges into the suite's tasks instead of replacing them; "
                          "choose tasks with tasks=arc_easy,gsm8k (per-task settings: suite.tasks.<task>.<key>=value)")
