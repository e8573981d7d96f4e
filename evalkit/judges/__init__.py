"""Judges: work done on a task's records after the model answered and before metrics.

Some rows need more than the model's own output to be scored: a toxicity classifier over
generations, or executing generated code against tests. A task names its judge in
``judge: {name: ..., args...}``; the runner calls it on all of the task's records at once
(so it can batch) and metrics read the fields it wrote. Judges never call the evaluated
model and know nothing of reports.

A judge's failure on one item never ends the run: when a judge raises on a batch (for
anything but a configuration error, which is the whole run's), it is run again item by
item, and each item it still fails on gets ``record["judge_error"]`` (outcome ``error``
and a one-line message); metrics leave such items unscored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from evalkit.errors import ConfigError

log = logging.getLogger("evalkit")

Record = dict[str, Any]
# fn(records, judge_args: dict, run_cfg: dict) -> info dict recorded in results.json
Judge = Callable[[list[Record], dict[str, Any], dict[str, Any]], dict[str, Any]]
# fn(judge_args: dict, run_cfg: dict) -> None; raises ConfigError before any model work
Preflight = Callable[[dict[str, Any], dict[str, Any]], None]
JUDGES: dict[str, Judge] = {}
PREFLIGHTS: dict[str, Preflight] = {}


def judge(name: str, preflight: Preflight | None = None) -> Callable[[Judge], Judge]:
    """Register a judge under ``name``; ``preflight`` checks its settings before the run
    starts (e.g. code execution not enabled, scorer not installed), so a mistake costs
    seconds rather than a finished generation pass."""

    def wrap(fn: Judge) -> Judge:
        JUDGES[name] = fn
        if preflight:
            PREFLIGHTS[name] = preflight
        return fn

    return wrap


def check_judge(spec: dict[str, Any], run_cfg: dict[str, Any]) -> None:
    """Run the preflight check of the judge a task spec names (if it has one)."""
    name = spec.get("name")
    _load_builtin()
    if name not in JUDGES:
        raise ConfigError(f"unknown judge {name!r}; available: {', '.join(sorted(JUDGES)) or 'none'}")
    if name in PREFLIGHTS:
        PREFLIGHTS[name]({k: v for k, v in spec.items() if k != "name"}, run_cfg)


def run_judge(spec: dict[str, Any], records: list[Record], run_cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the judge a task spec names on its records; returns what to record about it."""
    spec = dict(spec)
    name = spec.pop("name", None)
    _load_builtin()
    if name not in JUDGES:
        raise ConfigError(f"unknown judge {name!r}; available: {', '.join(sorted(JUDGES)) or 'none'}")
    fn = JUDGES[name]
    try:
        return fn(records, spec, run_cfg)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - find the item(s) at fault, record it on them, go on
        log.warning("judge %s failed on the batch (%s); judging item by item", name, _one_line(e))
    info: dict[str, Any] = {"name": name, "errors": 0}
    for r in records:
        try:
            info = {**fn([r], spec, run_cfg), "errors": info["errors"]}
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001
            r["judge_error"] = {"judge": name, "outcome": "error", "message": _one_line(e)}
            info["errors"] += 1
            log.warning("judge %s failed on item %s: %s", name, r.get("id"), _one_line(e))
    return info


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:500]


def _load_builtin() -> None:
    """Import the modules that register evalkit's own judges (lazily: they may be heavy)."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
