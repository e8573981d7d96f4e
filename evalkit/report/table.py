"""Card-shaped tables (pandas) from run results.

Each task spec's ``card`` entry says which table and row its number belongs to, the
card's metric label, and which metric fills it. Rows appear in the card's order; the
card's published values sit beside evalkit's.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import pandas as pd
import yaml

from evalkit.paths import REPORTS_DIR

TABLES = ("capability", "safety")


@lru_cache(maxsize=1)
def reference() -> dict[str, Any]:
    """The card's published values (``reports/gemma2_card.yaml``)."""
    with open(REPORTS_DIR / "gemma2_card.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def card_entries(task: str, task_result: dict[str, Any]) -> list[dict[str, Any]]:
    """The card rows a task fills: ``card`` may be one mapping or a list under ``rows``."""
    card = task_result.get("card") or {}
    entries = card.get("rows") or [card]
    out = []
    for e in entries:
        if not e.get("row"):
            continue
        out.append({
            "table": e.get("table", "capability"),
            "row": e["row"],
            "label": e.get("metric", ""),
            "metric": e.get("metric_name") or task_result["primary"],
            "scale": e.get("scale", 100),
            "task": task,
        })
    return out


def column_labels(results: list[dict[str, Any]]) -> list[str]:
    """One unique column label per run: the model label, made unique by the run folder."""
    labels = [str(r["model"].get("label") or r["model"].get("name")) for r in results]
    out = []
    for r, label in zip(results, labels):
        if labels.count(label) > 1:
            label = f"{label} [{r['run_dir'].rstrip('/').split('/')[-1]}]"
        out.append(label)
    return out


def long_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (card row, run) with value, stderr, n, task and task hash (scaled as the card)."""
    records = []
    order = _card_order()
    for col, res in zip(column_labels(results), results):
        for task, tr in res["tasks"].items():
            for e in card_entries(task, tr):
                m = tr["metrics"].get(e["metric"])
                if m is None:
                    continue
                scale = e["scale"]
                records.append({
                    **e,
                    "order": order.get((e["table"], e["row"]), 1000),
                    "run": col,
                    "run_dir": res.get("run_dir"),
                    "value": _scaled(m["value"], scale),
                    "stderr": _scaled(m.get("stderr"), scale),
                    "n": m.get("n"),
                    "hash": tr.get("hash"),
                    "higher_is_better": tr.get("higher_is_better", {}).get(e["metric"], True),
                })
    return pd.DataFrame.from_records(records)


def card_frame(results: list[dict[str, Any]], table: str | None = None, with_reference: bool = True) -> pd.DataFrame:
    """The card table: Benchmark | Metric | one column per run ("v ± se") | the card's values."""
    long = long_frame(results)
    if long.empty:
        return pd.DataFrame(columns=["Table", "Benchmark", "Metric"])
    if table:
        long = long[long["table"] == table]
    long = long.assign(cell=[format_cell(v, s) for v, s in zip(long["value"], long["stderr"])])
    wide = long.pivot_table(index=["table", "order", "row", "label"], columns="run", values="cell", aggfunc="first")
    wide = wide.reindex(columns=column_labels(results)).reset_index().sort_values(["table", "order"], key=_table_key)
    if with_reference:
        wide = _add_reference(wide)
    wide = wide.drop(columns=["order"]).rename(columns={"table": "Table", "row": "Benchmark", "label": "Metric"})
    if table:
        wide = wide.drop(columns=["Table"])
    wide.columns.name = None
    return wide.fillna("")


def format_cell(value: float | None, stderr: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}" if stderr is None or math.isnan(stderr) else f"{value:.2f} ± {stderr:.2f}"


def _scaled(v: float | None, scale: float) -> float | None:
    return None if v is None else v * scale


def _table_key(col: pd.Series) -> pd.Series:
    return col.map({t: i for i, t in enumerate(TABLES)}) if col.name == "table" else col


def _card_order() -> dict[tuple[str, str], int]:
    ref = reference()
    return {(t, r["row"]): i for t in TABLES for i, r in enumerate(ref[t]["rows"])}


def _add_reference(wide: pd.DataFrame) -> pd.DataFrame:
    ref = reference()
    cols: dict[str, list[str]] = {}
    for t in TABLES:
        for c in ref[t]["columns"]:
            cols.setdefault(c, [""] * len(wide))
    for i, (t, row) in enumerate(zip(wide["table"], wide["row"])):
        if t not in ref:
            continue
        for r in ref[t]["rows"]:
            if r["row"] == row:
                for c, v in zip(ref[t]["columns"], r["values"]):
                    cols[c][i] = f"{v:.2f}"
    for c, vals in cols.items():
        if any(vals):
            wide[f"card: {c}"] = vals
    return wide
