"""Judges: work done on a task's records after the model answered and before metrics.

Some rows need more than the model's own output to be scored: a toxicity classifier over
generations, or executing generated code against tests. A task names its judge in
``judge: {name: ..., args...}``; the runner calls it on all of the task's records at once
(so it can batch) and metrics read the fields it wrote. Judges never call the evaluated
model and know nothing of reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evalkit.errors import ConfigError

Record = dict[str, Any]
# fn(records, judge_args: dict, run_cfg: dict) -> info dict recorded in results.json
Judge = Callable[[list[Record], dict[str, Any], dict[str, Any]], dict[str, Any]]
JUDGES: dict[str, Judge] = {}


def judge(name: str) -> Callable[[Judge], Judge]:
    """Register a judge under ``name``."""

    def wrap(fn: Judge) -> Judge:
        JUDGES[name] = fn
        return fn

    return wrap


def run_judge(spec: dict[str, Any], records: list[Record], run_cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the judge a task spec names on its records; returns what to record about it."""
    spec = dict(spec)
    name = spec.pop("name", None)
    _load_builtin()
    if name not in JUDGES:
        raise ConfigError(f"unknown judge {name!r}; available: {', '.join(sorted(JUDGES)) or 'none'}")
    return JUDGES[name](records, spec, run_cfg)


def _load_builtin() -> None:
    """Import the modules that register evalkit's own judges (lazily: they may be heavy)."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
