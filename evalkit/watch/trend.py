"""The trend report: every card row of a series of checkpoint runs against training step.

Per row, one small inline-SVG plot (``evalkit.report.plot``): the value with its 95%
interval at each step, the baseline as a solid line, and a point in red where that
checkpoint's row regressed against the baseline (significant, per the gate). Below: a
table of the checkpoints with their verdicts against the baseline and the previous
checkpoint, and the gate table of the newest checkpoint. Same self-contained page as the
card (no script, nothing fetched; the card's own stylesheet).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from evalkit import __version__
from evalkit.compare.outputs import fmt, fmt_p
from evalkit.compare.rows import Comparison, compare_runs
from evalkit.errors import EvalkitError
from evalkit.files import atomic_write_text
from evalkit.report.plot import Point, series_svg
from evalkit.card import Z95, card_position, format_cell, row_entries
from evalkit.watch.checkpoints import step_of

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("evalkit.report", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined)


@dataclass
class TrendPoint:
    """One checkpoint run in the series, with its comparisons (None without a gate/base)."""

    results: dict[str, Any]  # load_results() of its run folder
    step: int
    label: str
    vs_base: Comparison | None = None
    vs_prev: Comparison | None = None


def run_step(results: dict[str, Any]) -> int | None:
    """A run's training step: from the checkpoint it evaluated (``trainer_state.json`` or
    the folder name), else from the model label the run recorded."""
    pretrained = str((results.get("model") or {}).get("pretrained") or "")
    if pretrained and Path(pretrained).is_dir():
        step = step_of(pretrained)
        if step is not None:
            return step
    for text in (pretrained, str((results.get("model") or {}).get("label") or "")):
        numbers = re.findall(r"\d+", Path(text).name) if text else []
        if numbers:
            return int(numbers[-1])
    return None


def label_of(results: dict[str, Any]) -> str:
    model = results.get("model") or {}
    return str(model.get("label") or Path(str(model.get("pretrained", "run"))).name)


def order_by_step(results: list[dict[str, Any]]) -> list[TrendPoint]:
    """``results`` as trend points sorted by step; a run without a step is an error."""
    points = []
    for res in results:
        step = run_step(res)
        if step is None:
            raise EvalkitError(f"{res['run_dir']}: no training step found (the checkpoint folder has no trainer_state.json "
                               "and no number in its name); name checkpoint folders like checkpoint-1000")
        points.append(TrendPoint(res, step, label_of(res)))
    return sorted(points, key=lambda p: p.step)


def compare_series(baseline: dict[str, Any] | None, points: list[TrendPoint], gate: Any) -> None:
    """Fill each point's comparison with the baseline and with the previous checkpoint."""
    prev = None
    for p in points:
        if baseline is not None and p.vs_base is None:
            p.vs_base = compare_runs(baseline, p.results, gate, labels=("baseline", p.label))
        if prev is not None and p.vs_prev is None:
            p.vs_prev = compare_runs(prev.results, p.results, gate, labels=(prev.label, p.label))
        prev = p


def verdict(comp: Comparison | None) -> str:
    """pass | fail | inconclusive | "" (nothing compared). Reads the comparison's own
    verdict where the gate gives one, so a gate with more outcomes passes through."""
    if comp is None:
        return ""
    own = getattr(comp, "verdict", None)
    if isinstance(own, str) and own:
        return own.lower()
    if not comp.gate.enforced:
        return "compared"
    verdicts = [str(r.verdict).lower() for r in comp.rows]
    blocking = [str(r.verdict).lower() for r in comp.failed]
    # Only a checked regression (or a row that could not be checked at all) fails a
    # checkpoint; a row the test could not settle either way is inconclusive, never a pass.
    if any(v.startswith("regression") or v in _UNCHECKED for v in blocking):
        return "fail"
    if blocking or any("inconclusive" in v for v in verdicts):
        return "inconclusive"
    return "pass"


_UNCHECKED = ("missing", "partial coverage", "not comparable", "not testable")


def is_regression(comp: Comparison | None) -> bool:
    return verdict(comp) == "fail"


def write_trend(path: str | Path, baseline: dict[str, Any] | None, points: list[TrendPoint], gate: Any,
                title: str = "Checkpoint trend") -> Path:
    """Render the trend report of ``points`` (in step order) to ``path`` atomically."""
    out = Path(path)
    atomic_write_text(out, render_trend(baseline, points, gate, title))
    return out.resolve()


def render_trend(baseline: dict[str, Any] | None, points: list[TrendPoint], gate: Any, title: str) -> str:
    newest = points[-1] if points else None
    return _ENV.get_template("trend.html.j2").render(
        title=title, style=card_style(), version=__version__,
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        gate=gate if gate is not None and gate.enforced else None,
        baseline=_baseline_view(baseline), plots=row_plots(baseline, points),
        checkpoints=[_checkpoint_view(p) for p in points],
        newest=newest.label if newest else None, newest_verdict=verdict(newest.vs_base) if newest else "",
        gate_rows=[_gate_row(r, newest.vs_prev) for r in newest.vs_base.rows] if newest and newest.vs_base else [])


def card_style() -> Markup:
    """The card's stylesheet, read from its template so both pages always look alike."""
    source = _ENV.loader.get_source(_ENV, "card.html.j2")[0]  # type: ignore[union-attr]
    m = re.search(r"<style>.*?</style>", source, re.S)
    return Markup(m.group(0) if m else "")


def _values(results: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per card row (table, row, label): value and 95% half-width in points, n."""
    out = {}
    for task, tr in results["tasks"].items():
        for e in row_entries(task, tr):
            m = tr["metrics"].get(e["metric"])
            if m is None or m.get("value") is None:
                continue
            se = m.get("stderr")
            out[(e["table"], e["row"], e["label"])] = {
                "value": m["value"] * e["scale"], "n": m.get("n"),
                "ci": None if se is None or (isinstance(se, float) and math.isnan(se)) else se * e["scale"] * Z95}
    return out


def row_plots(baseline: dict[str, Any] | None, points: list[TrendPoint]) -> list[dict[str, Any]]:
    """One plot per card row, in the card's order."""
    base_vals = _values(baseline) if baseline is not None else {}
    per_point = [_values(p.results) for p in points]
    keys = sorted({k for v in per_point for k in v}, key=lambda k: (*card_position(k[0], k[1]), k[1]))
    plots = []
    for key in keys:
        table, row, label = key
        pts, flagged = [], 0
        for p, vals in zip(points, per_point):
            v = vals.get(key)
            d = _row_of(p.vs_base, key)
            state = _state(d)
            flagged += state == "worse"
            text = format_cell(v["value"], v["ci"]) if v else "n/a"
            tip = f"step {p.step} ({p.label}): {text}" + (f"; vs baseline: {d.verdict}" if d is not None and d.verdict else "")
            pts.append(Point(str(p.step), v["value"] if v else None, v["ci"] if v else None, state, tip, x=float(p.step)))
        base = base_vals.get(key)
        name = f"{row} ({label})" if label else row
        plots.append({"row": row, "label": label, "table": table, "regressions": flagged,
                      "steps": sum(pt.value is not None for pt in pts),
                      "svg": series_svg(name, pts, baseline=base["value"] if base else None)})
    return plots


def _row_of(comp: Comparison | None, key: tuple[str, str, str]):
    if comp is None:
        return None
    return next((r for r in comp.rows if (r.table, r.row, r.label) == key), None)


def _state(d: Any) -> str:
    """worse: the row regressed against the baseline (significant, beyond its allowance);
    better: a significant improvement; same otherwise."""
    if d is None:
        return "same"
    v = str(d.verdict).lower()
    if v.startswith("regression") or v == "worse" or v == "fail":
        return "worse"
    return "better" if v == "improved" else "same"


_CLASS = {"pass": "ok", "fail": "fail", "inconclusive": "warn", "compared": "ok"}


def _verdict_cls(text: str) -> str:
    t = text.lower()
    if t.startswith("regression") and "not enforced" not in t or t in ("not comparable", "fail"):
        return "fail"
    if t in ("improved", "no significant change", "pass"):
        return "ok"
    return "warn"  # inconclusive, not testable, worse within threshold, ...


def _checkpoint_view(p: TrendPoint) -> dict[str, Any]:
    vb, vp = verdict(p.vs_base), verdict(p.vs_prev)
    blocking = [r.name for r in p.vs_base.failed] if p.vs_base is not None else []
    since_prev = [r.name for r in p.vs_prev.failed] if p.vs_prev is not None else []
    return {"step": p.step, "label": p.label, "run_dir": p.results.get("run_dir", ""),
            "vs_base": vb, "vs_base_cls": _CLASS.get(vb, "warn"), "vs_prev": vp, "vs_prev_cls": _CLASS.get(vp, "warn"),
            "blocking": blocking, "since_prev": since_prev}


def _gate_row(r: Any, vs_prev: Comparison | None) -> dict[str, Any]:
    prev = next((x for x in vs_prev.rows if x.key == r.key and x.label == r.label), None) if vs_prev else None
    return {"name": r.name, "base": fmt(r.base), "new": fmt(r.new), "delta": fmt(r.delta, sign=True),
            "ci": f"[{fmt(r.low, True)}, {fmt(r.high, True)}]" if r.low is not None else "",
            "p": fmt_p(r.p_holm), "n": r.n, "allowed": f"{r.rule.max_drop:g}" if r.rule else "",
            "verdict": r.verdict or r.status, "cls": _verdict_cls(r.verdict or r.status), "reason": r.reason,
            "prev": prev.verdict if prev else "", "prev_cls": _verdict_cls(prev.verdict) if prev else ""}


def _baseline_view(baseline: dict[str, Any] | None) -> dict[str, Any] | None:
    if baseline is None:
        return None
    cfg_path = Path(baseline.get("run_dir", "")) / "config.yaml"
    suite = baseline.get("suite", "?")
    if cfg_path.is_file():
        suite = (yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}).get("suite", {}).get("name", suite)
    return {"label": label_of(baseline), "run_dir": baseline.get("run_dir", ""), "suite": suite,
            "pretrained": (baseline.get("model") or {}).get("pretrained", "?")}
