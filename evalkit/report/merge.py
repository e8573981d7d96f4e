"""One column per model: runs of the same model and settings that share no task (e.g.
``card_pt_run card_code_run``) are shown as one run, not as half-empty columns."""

from __future__ import annotations

from typing import Any

from evalkit.card import _flatten, _run_config  # the run's resolved config, flattened

# Keys that may differ between runs merged into one column: what was run, not how.
_FREE = ("suite.", "output_dir", "run_name", "report", "progress", "sandbox.", "tasks")


def merge_runs(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results`` with every group of same-model, same-settings, disjoint-task runs merged
    (in first-appearance order). A merged result keeps each task's run folder in
    ``task_run_dirs`` and lists the folders it came from in ``merged_from``."""
    out: list[dict[str, Any]] = []
    keys: list[tuple] = []
    for res in results:
        key = _identity(res)
        target = next((o for o, k in zip(out, keys) if k == key and not set(o["tasks"]) & set(res["tasks"])), None)
        if target is None:
            out.append(res)
            keys.append(key)
            continue
        merged = _merge(target, res)
        out[out.index(target)] = merged
    return out


def _identity(res: dict[str, Any]) -> tuple:
    model = res.get("model") or {}
    flat = _flatten(_run_config(res))
    settings = tuple(sorted((k, repr(v)) for k, v in flat.items() if not k.startswith(_FREE)))
    return (repr(sorted((k, repr(v)) for k, v in model.items() if "seconds" not in k)), res.get("data_root"), settings)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    first = a.get("merged_from") or [a["run_dir"]]
    dirs = {**(a.get("task_run_dirs") or {t: a["run_dir"] for t in a["tasks"]}), **{t: b["run_dir"] for t in b["tasks"]}}
    return {**a, "tasks": {**a["tasks"], **b["tasks"]}, "task_run_dirs": dirs, "merged_from": [*first, b["run_dir"]],
            "suite": f"{a.get('suite')} + {b.get('suite')}",
            "config_hash": f"{a.get('config_hash')} + {b.get('config_hash')}"}
