"""What the HTML report shows, as plain data for the template: card tables with one column
per run and a delta column per comparison, series plots, and flipped-item drill-downs."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from evalkit.compare.outputs import arrow, coverage, fmt, fmt_p, test_text, verdict_text
from evalkit.compare.rows import Comparison, RowDelta
from evalkit.report.plot import Point, series_svg
from evalkit.report.records_view import answer_text, prompt_text, target_text
from evalkit.card import ALL_TABLES, format_cell, long_frame, reference_columns, reference_row
from evalkit.card_facts import measured_text

TITLES = {"capability": "Benchmark results", "safety": "Ethics and safety", "other": "Other tasks"}
_VERDICT_CLASS = {"regression": "fail", "not comparable": "fail", "missing": "fail", "partial coverage": "fail",
                  "not testable": "warn", "inconclusive": "warn", "worse": "warn", "regression (not enforced)": "warn",
                  "inconclusive (not enforced)": "warn", "pass": "ok"}


def table_views(results: list[dict[str, Any]], labels: list[str], comps: list[Comparison]) -> list[dict[str, Any]]:
    """One view per card table that has rows: header labels and rows in card order."""
    long = long_frame(results)
    if long.empty:
        return []
    by_key = {c_i: {(r.table, r.row, r.label): r for r in c.rows} for c_i, c in enumerate(comps)}
    views = []
    for t in ALL_TABLES:
        part = long[long["table"] == t]
        if part.empty:
            continue
        rows = []
        for (_, row, label), g in part.groupby(["order", "row", "label"], sort=True):
            rows.append(_row_view(t, row, label, g, labels, comps, by_key))
        views.append({"name": t, "title": TITLES[t], "ref_columns": reference_columns(t), "rows": rows})
    return views


def _row_view(table: str, row: str, label: str, g: pd.DataFrame, labels: list[str], comps: list[Comparison],
              by_key: dict[int, dict[tuple[str, str, str], RowDelta]]) -> dict[str, Any]:
    ref = reference_row(table, row)
    hib = bool(g["higher_is_better"].iloc[0]) if "higher_is_better" in g else not (ref or {}).get("lower_is_better")
    cells, points = [], []
    for i, run in enumerate(labels):
        hit = g[g["run"] == run]
        if hit.empty:
            cells.append(None)
            points.append(Point(str(i + 1), None, None))
            continue
        v, ci, n = hit["value"].iloc[0], hit["ci"].iloc[0], hit["n"].iloc[0]
        ci = None if ci is None or (isinstance(ci, float) and math.isnan(ci)) else float(ci)
        lo, hi = (hit[k].iloc[0] if k in hit else None for k in ("low", "high"))
        measured = measured_text(n, hit["coverage"].iloc[0] if "coverage" in hit else "")
        cells.append({"text": format_cell(v, ci, lo, hi), "measured": measured,
                      "title": f"{measured}; [low, high]: the 95% interval (Wilson for proportions)"})
        state = "same"
        if i > 0 and comps:
            d = by_key[i - 1].get((table, row, label))
            state = _state(d, comps[i - 1].gate.alpha) if d else "same"
        points.append(Point(str(i + 1), float(v), ci, state,
                            f"#{i + 1} {run}: {format_cell(v, ci)}" + ("" if state == "same" else f" ({state}, significant)")))
    deltas = [_delta_view(by_key[c_i].get((table, row, label)), c.gate.alpha) for c_i, c in enumerate(comps)]
    refs = [f"{v:.2f}" for v in (ref or {}).get("values", [])]
    refs += [""] * (len(reference_columns(table)) - len(refs))
    measured = sum(p.value is not None for p in points)  # a one-point series is not a trend
    svg = series_svg(f"{row} ({label})" if label else row, points, (ref or {}).get("values", [None])[0]) if measured > 1 else ""
    scored = g[g["scorer"] != ""] if "scorer" in g else g.iloc[0:0]
    scorer = scored["scorer"].iloc[0] if not scored.empty else ""
    return {"row": row, "label": label, "arrow": arrow(hib), "better": "higher" if hib else "lower",
            "scorer": scorer, "scorer_note": scored["scorer_note"].iloc[0] if scorer else "",
            "cells": cells, "deltas": deltas, "refs": refs, "svg": svg}


def _state(d: RowDelta, alpha: float) -> str:
    if d.status != "ok" or not d.significant(alpha) or not d.delta:
        return "same"
    worse_up = d.rule.worse == "higher" if d.rule else not d.higher_is_better
    return "worse" if (d.delta > 0) == worse_up else "better"


def _delta_view(d: RowDelta | None, alpha: float) -> dict[str, Any] | None:
    if d is None:
        return None
    verdict_cls = _VERDICT_CLASS.get(d.verdict, "") if d.blocking or d.verdict == "pass" else "warn"
    verdict = f"{verdict_text(d)} · {coverage(d)} items"
    if d.status != "ok":
        return {"text": d.status, "ci": "", "cls": "na", "title": d.reason, "verdict": verdict, "verdict_cls": verdict_cls}
    state = _state(d, alpha)
    title = (f"{test_text(d)}; p = {fmt_p(d.p)}, p (Holm) = {fmt_p(d.p_holm)}; paired on {coverage(d)} items; "
             f"base {fmt(d.base)} → new {fmt(d.new)}")
    if d.rule:
        title += f"; rule: max drop {d.rule.max_drop:g}, {d.rule.worse} is worse ({d.rule.source})"
    return {"text": fmt(d.delta, sign=True), "ci": f"[{fmt(d.low, True)}, {fmt(d.high, True)}]",
            "p": fmt_p(d.p_holm), "cls": {"worse": "sig-worse", "better": "sig-better"}.get(state, ""),
            "title": title, "verdict": verdict, "verdict_cls": verdict_cls}


def drilldowns(comps: list[Comparison]) -> list[dict[str, Any]]:
    """Per comparison, per row: the items whose score changed, got-worse first."""
    out = []
    for c in comps:
        rows = []
        for r in c.rows:
            if r.status != "ok" or not r.flips:
                continue
            worse, better = r.flips.get("worse", {}), r.flips.get("better", {})
            if not (worse.get("count") or better.get("count")):
                continue
            rows.append({"name": r.name, "task": r.task, "metric": r.metric,
                         "worse": _items(worse), "better": _items(better),
                         "n_worse": worse.get("count", 0), "n_better": better.get("count", 0)})
        out.append({"base": c.base_label, "new": c.new_label, "rows": rows,
                    "untested": [f"{r.name}: {r.reason}" for r in c.rows if r.status != "ok"]})
    return out


def _items(side: dict[str, Any]) -> list[dict[str, Any]]:
    items = []
    for it in side.get("items", []):
        b, n = it["base"], it["new"]
        bp, np_ = prompt_text(b), prompt_text(n)
        items.append({"id": it["id"], "target": target_text(b), "base_score": f"{it['base_score']:.4g}",
                      "new_score": f"{it['new_score']:.4g}", "base_answer": answer_text(b), "new_answer": answer_text(n),
                      "base_prompt": bp, "new_prompt": np_ if np_ != bp else None})
    return items


def run_views(results: list[dict[str, Any]], labels: list[str], examples) -> list[dict[str, Any]]:
    """Per run: its identity (model, data, settings) and per-task metrics with a few samples."""
    out = []
    for i, (label, res) in enumerate(zip(labels, results)):
        dirs = res.get("task_run_dirs") or {}
        tasks = [{"name": name, "tr": tr, "examples": examples(dirs.get(name, res["run_dir"]), name)}
                 for name, tr in res["tasks"].items()]
        out.append({"index": i + 1, "label": label, "meta": _run_meta(res), "tasks": tasks})
    return out


def _run_meta(res: dict[str, Any]) -> dict[str, Any]:
    """A run's identity for the page; tolerant of run folders written by older versions."""
    model = res.get("model") or {}
    sha = model.get("gguf_sha256") or model.get("weights_sha256") or ""
    return {"run_dir": " + ".join(res.get("merged_from") or [res.get("run_dir", "")]), "pretrained": model.get("pretrained", model.get("name", "?")),
            "dtype": model.get("loaded_dtype", model.get("dtype", "?")), "device": model.get("device", "?"),
            "sha": sha[:12], "suite": res.get("suite", "?"), "data_root": res.get("data_root", "?"),
            "config_hash": res.get("config_hash", "?"),
            "chat_template": (res.get("prompting") or {}).get("chat_template", "?"),
            "wall": (res.get("timing") or {}).get("wall_seconds"), "tokens": (res.get("tokens") or {}).get("forward"),
            "server": _server_meta(model, res.get("tokens") or {})}


def _server_meta(model: dict[str, Any], tokens: dict[str, Any]) -> dict[str, Any] | None:
    """Where a model behind an HTTP server was reached, and what the run used there."""
    server = model.get("server")
    if not isinstance(server, dict):
        return None
    version = server.get("version") or "; ".join(f"{k}: {v}" for k, v in (server.get("version_headers") or {}).items())
    return {"host": server.get("host"), "served_model": server.get("served_model"), "api": model.get("api"),
            "version": version or "not reported", "prompt_tokens": tokens.get("prompt_tokens"),
            "completion_tokens": tokens.get("completion_tokens"), "cost": tokens.get("cost_estimate"),
            "failed": tokens.get("failed_requests", 0), "retries": tokens.get("http_retries", 0)}
