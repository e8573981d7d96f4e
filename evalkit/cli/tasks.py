"""``evalkit tasks [data_root=DIR|samples|hub]``: a table of the task specs.

Per task: the card row(s) it fills, its primary metric, the request type the backend
answers, few-shot count, where its data comes from and whether the evaluation split is
present under ``data_root`` (the bundled samples by default). The hub is not contacted:
its column says so rather than guess.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError

_REQUEST = {"multiple_choice": "loglikelihood", "rolling": "loglikelihood_rolling", "generate": "generate_until"}
_HEADER = ("task", "card row", "metric", "request type", "shots", "data source", "present")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="evalkit tasks", description="Table of the task specs and their data.")
    ap.add_argument("settings", nargs="*", metavar="data_root=DIR", help="where to look for data (default: samples)")
    ns = ap.parse_args(argv)
    root_value: Any = "samples"
    for s in ns.settings:
        key, _, value = s.partition("=")
        if key != "data_root" or not _:
            raise ConfigError(f"{s}: evalkit tasks takes only data_root=DIR|samples|hub")
        root_value = value
    from evalkit.config import data_root

    root = data_root(root_value)
    rows = task_rows(root)
    print(format_table([_HEADER, *rows]))
    where = "the Hugging Face hub (not contacted)" if root is None else str(root)
    print(f"\n{len(rows)} tasks; data_root={root_value} ({where}). Run some: evalkit tasks=arc_easy,gsm8k")
    return 0


def task_rows(root: Path | None) -> list[tuple[str, ...]]:
    """One table row per task spec."""
    from evalkit.tasks.spec import available_tasks, load_task

    out = []
    for name in available_tasks():
        spec = load_task(name)
        card = spec.card.get("rows") or [spec.card]
        rows = " / ".join(f"{c.get('row')}" for c in card if c.get("row")) or "(none)"
        kind = _REQUEST.get(spec.type, spec.type)
        judge = (spec.raw.get("judge") or {}).get("name")
        if judge:
            kind += f" + {judge}"
        source, present = _data(spec, root)
        out.append((name, rows, spec.primary, kind, str(spec.fewshot["n"]), source, present))
    return out


def _data(spec, root: Path | None) -> tuple[str, str]:
    """(where the eval split comes from, whether it is there) for ``root``."""
    from evalkit.tasks.data import split_entries

    kind = "hub" if root is None else "local"
    source = spec.source.get(kind)
    if not source:
        return f"(no {kind} source)", "no"
    try:
        entries = split_entries(spec.name, source, "eval")
    except Exception:  # noqa: BLE001 - a spec without an eval split shows as absent, the table goes on
        return "(no eval split)", "no"
    if kind == "hub":
        return f"hub:{source.get('path', '?')}", "not checked"
    patterns = []
    for _, target in entries:
        if isinstance(target, dict):
            target = target.get("files") or target.get("url") or ""
        patterns += [target] if isinstance(target, str) else list(target)
    found = [p for p in patterns if glob.glob(str(root / p))]
    present = "yes" if len(found) == len(patterns) else ("partly" if found else "no")
    shown = patterns[0] + (f" (+{len(patterns) - 1})" if len(patterns) > 1 else "")
    return shown, present


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Plain aligned columns (copy-pasteable, no box drawing)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
