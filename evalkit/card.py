"""The card: its rows, published reference values, run labels and number formats, and
card-shaped tables (pandas) from run results. Shared by ``compare`` and ``report``;
reads only ``results.json`` dicts and run folders.

Each task spec's ``card`` entry says which table and row its number belongs to, the
card's metric label, and which metric fills it. Rows appear in the card's order; the
card's published values sit beside evalkit's. Values are on the card's scale (points)
with the half-width of a 95% normal interval (1.96 standard errors).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from scipy.stats import norm

from evalkit.compare.stats import value_interval
from evalkit.paths import REPORTS_DIR
from evalkit.rundir import is_identity_key
from evalkit.card_facts import facts, measured_text

#: Half-width of a normal 95% interval in standard errors (values shown as v ± 1.96 se).
Z95 = float(norm.ppf(0.975))
TABLES = ("capability", "safety")  # the card's tables, in its order
ALL_TABLES = (*TABLES, "other")  # "other": tasks that fill no card row


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


def row_entries(task: str, task_result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a task fills: its card rows, else its primary metric in an "other" table
    (so a team's own tasks show up and can be gated too)."""
    rows = card_entries(task, task_result)
    if rows:
        return rows
    primary = task_result["primary"]
    return [{"table": "other", "row": task, "label": primary, "metric": primary, "scale": 100, "task": task}]


def column_labels(results: list[dict[str, Any]]) -> list[str]:
    """One unique, short label per run: the model label; when several runs share it, the
    settings that differ between them (e.g. ``chat_template=true``, ``pretrained=step2000``)."""
    models = [str(r["model"].get("label") or r["model"].get("name")) for r in results]
    if len(set(models)) == len(models):
        return models
    diffs = config_differences(results)
    same_model = len(set(models)) == 1
    labels = []
    for m, d in zip(models, diffs):
        labels.append((d if same_model else f"{m} {d}") if d else m)
    out = []
    for i, label in enumerate(labels):
        out.append(f"{label} #{i + 1}" if labels.count(label) > 1 else label)
    return out


def config_differences(results: list[dict[str, Any]]) -> list[str]:
    """Per run, ``key=value`` for every resolved-config setting that is not the same in all
    runs (the run folder's ``config.yaml``); paths shortened to their last part."""
    flat = [_flatten(_run_config(r)) for r in results]
    keys = sorted({k for f in flat for k in f if is_identity_key(k)})
    varying = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    if "suite.name" in varying:  # different suites: the name says it, not every per-task override
        varying = [k for k in varying if not k.startswith("suite.") or k == "suite.name"]
    short = {k: k.rsplit(".", 1)[-1] for k in varying}
    if len(set(short.values())) < len(short):
        short = {k: k.removeprefix("suite.tasks.") for k in varying}
    if "suite.name" in short:
        short["suite.name"] = "suite"
    out = []
    for f in flat:
        text = ", ".join(f"{short[k]}={_short_value(f.get(k))}" for k in varying)
        out.append(text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…")
    return out


_MAX_LABEL = 80  # a column header; the run table below the card lists each run's settings


def _run_config(res: dict[str, Any]) -> dict[str, Any]:
    path = Path(res.get("run_dir", "")) / "config.yaml"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _short_value(v: Any) -> str:
    text = str(v).lower() if isinstance(v, bool) else str(v)
    if "/" in text and len(text) > 24:
        text = text.rstrip("/").rsplit("/", 1)[-1]
    return text if len(text) <= 40 else text[:37] + "..."


def long_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (card row, run) with value, stderr, n, task and task hash (scaled as the card)."""
    records = []
    order = _card_order()
    for col, res in zip(column_labels(results), results):
        for task, tr in res["tasks"].items():
            for e in row_entries(task, tr):
                m = tr["metrics"].get(e["metric"])
                if m is None:
                    continue
                scale = e["scale"]
                interval = value_interval(m["value"], m.get("stderr"), m.get("n")) or (None, None)
                records.append({
                    **e,
                    "order": order.get((e["table"], e["row"]), 1000),
                    "run": col,
                    "run_dir": res.get("run_dir"),
                    "value": _scaled(m["value"], scale),
                    "stderr": _scaled(m.get("stderr"), scale),
                    "ci": _scaled(m.get("stderr"), scale * Z95),
                    "low": _scaled(interval[0], scale),  # Wilson for proportions: honest at 0% and 100%
                    "high": _scaled(interval[1], scale),
                    "n": m.get("n"),
                    "hash": tr.get("hash"),
                    "higher_is_better": tr.get("higher_is_better", {}).get(e["metric"], True),
                    **facts(tr, e, m, reference_row(e["table"], e["row"])),
                })
    return pd.DataFrame.from_records(records)


def card_frame(results: list[dict[str, Any]], with_reference: bool = True) -> pd.DataFrame:
    """The card table: Benchmark | Metric | one column per run (value, 95% interval, n) | the card's values."""
    long = long_frame(results)
    if long.empty:
        return pd.DataFrame(columns=["Table", "Benchmark", "Metric"])
    long = long.assign(cell=[f"{format_cell(v, c, lo, hi)} ({measured_text(n, cov)})" for v, c, lo, hi, n, cov
                             in zip(long["value"], long["ci"], long["low"], long["high"], long["n"], long["coverage"])])
    wide = long.pivot_table(index=["table", "order", "row", "label"], columns="run", values="cell", aggfunc="first")
    wide = wide.reindex(columns=column_labels(results)).reset_index().sort_values(["table", "order"], key=_table_key)
    wide["label"] = [_with_scorer(label, long[(long["table"] == t) & (long["row"] == r)])
                     for t, r, label in zip(wide["table"], wide["row"], wide["label"])]
    if with_reference:
        wide = _add_reference(wide)
    wide = wide.drop(columns=["order"]).rename(columns={"table": "Table", "row": "Benchmark", "label": "Metric"})
    wide.columns.name = None
    return wide.fillna("")


def _with_scorer(label: str, rows: pd.DataFrame) -> str:
    """The metric label with the scorer beside it (and the note when the card used another)."""
    scored = rows[rows["scorer"] != ""]
    if scored.empty:
        return label
    first = scored.iloc[0]
    return f"{label} [scorer: {first['scorer']}" + (f"; {first['scorer_note']}]" if first["scorer_note"] else "]")


def format_cell(value: float | None, ci: float | None, low: float | None = None, high: float | None = None) -> str:
    """``"62.00 [52.21, 70.89]"`` (the 95% interval, Wilson for proportions) or, without
    one, ``"62.00 ± 4.76"``: the value and the half-width of its normal interval (points)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        return f"{value:.2f} [{low:.2f}, {high:.2f}]"
    return f"{value:.2f}" if ci is None or math.isnan(ci) else f"{value:.2f} ± {ci:.2f}"


def reference_columns(table: str) -> list[str]:
    """The card's value columns for ``table`` (PT models for capability, IT for safety)."""
    return list(reference().get(table, {}).get("columns", [])) if table in TABLES else []


def reference_row(table: str, row: str) -> dict[str, Any] | None:
    """The card's entry for a row (``values``, ``metric``, ``lower_is_better``), if it has one."""
    if table not in TABLES:
        return None
    return next((r for r in reference()[table]["rows"] if r["row"] == row), None)


def _scaled(v: float | None, scale: float) -> float | None:
    return None if v is None else v * scale


def _table_key(col: pd.Series) -> pd.Series:
    return col.map({t: i for i, t in enumerate(ALL_TABLES)}) if col.name == "table" else col


def card_position(table: str, row: str) -> tuple[int, int]:
    """Sort key of a row: its table in card order, then its place in the card's table."""
    t = ALL_TABLES.index(table) if table in ALL_TABLES else len(ALL_TABLES)
    return t, _card_order().get((table, row), 1000)


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
