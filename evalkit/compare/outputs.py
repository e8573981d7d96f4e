"""What a comparison leaves behind for people and CI: Markdown, JUnit XML, JSON."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from evalkit.compare.rows import Comparison, RowDelta
from evalkit.files import atomic_write_json, atomic_write_text

_MARK = {"regression": "❌", "not comparable": "⛔", "not testable": "⚠️", "missing": "⛔", "partial coverage": "⛔",
         "inconclusive": "❔", "pass": "✅", "worse": "🔻", "regression (not enforced)": "🔻",
         "inconclusive (not enforced)": "❔"}


def fmt(v: float | None, sign: bool = False, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def test_text(r: RowDelta) -> str:
    if r.discordant:
        return f"{r.test} ({r.discordant[0]}↓ {r.discordant[1]}↑)"
    return r.test or "n/a"


def coverage(r: RowDelta) -> str:
    """``"98/100"``: items compared of those the base run holds for the row."""
    return f"{r.n}/{r.base_n}" if r.status == "ok" else f"0/{r.base_n}"


def verdict_text(r: RowDelta) -> str:
    """The verdict, with the items that would settle an inconclusive row."""
    if r.verdict.startswith("inconclusive"):
        return r.verdict + (f" (≈{r.needed:,} items would settle it)" if r.needed else " (no n settles it)")
    return r.verdict


def headline(comps: list[Comparison]) -> str:
    """One line: gate name and the overall verdict."""
    gate = comps[0].gate
    if not gate.enforced:
        return "evalkit compare (no gate)"
    blocking = [r.verdict for c in comps for r in c.failed]
    if not blocking:
        return f"evalkit gate `{gate.name}`: ✅ PASS (every gated row shown within its allowed drop)"
    counts = ", ".join(f"{blocking.count(v)} {v}" for v in dict.fromkeys(blocking))
    return f"evalkit gate `{gate.name}`: ❌ FAIL ({len(blocking)} row{'s' if len(blocking) != 1 else ''} blocking: {counts})"


def markdown_summary(comps: list[Comparison]) -> str:
    """A pull-request comment: the verdict, one table per comparison, what was not compared."""
    gate = comps[0].gate
    out = [f"### {headline(comps)}", ""]
    for c in comps:
        tested = sum(1 for r in c.rows if r.status == "ok")
        out += [f"**{_md(c.base_label)}** → **{_md(c.new_label)}** · one-sided α = {gate.alpha:g} per row "
                f"(Holm over {tested} tested rows for regressions) · {gate.confidence:.0%} CI · paired bootstrap with "
                f"{gate.resamples:,} resamples (seed {gate.seed}) · inconclusive rows: "
                f"{'block' if gate.policy['inconclusive'] == 'fail' else 'warn'}", ""]
        out += ["| | Row | Metric | Base | New | Δ (CI) | Items | Allowed drop | p within | p beyond (Holm) | Test | Verdict |",
                "|---|---|---|--:|--:|---|--:|--:|--:|--:|---|---|"]
        for r in c.rows:
            allowed = f"{r.rule.max_drop:g} ({'↑' if r.rule.worse == 'higher' else '↓'} worse)" if r.rule else ""
            ci = f"{fmt(r.delta, True)} ({fmt(r.low, True)}, {fmt(r.high, True)})" if r.status == "ok" else "—"
            out.append(f"| {_MARK.get(r.verdict, '')} | {_md(r.row)} | {_md(r.label)} {arrow(r.higher_is_better)} | "
                       f"{fmt(r.base)} | {fmt(r.new)} | {ci} | {coverage(r)} | {allowed} | {fmt_p(r.p_within)} | "
                       f"{fmt_p(r.p_beyond_holm)} | {_md(test_text(r))} | {_md(verdict_text(r))} |")
        notes = [f"- {_md(r.row)}: {_md(r.reason)}" for r in c.rows if r.reason]
        notes += [f"- {_md(r.row)}: paired on {r.n} shared items ({r.unpaired[0]} only in base, {r.unpaired[1]} only in new)"
                  for r in c.rows if any(r.unpaired)]
        if c.only_new:
            notes.append(f"- tasks only in the new run (nothing to compare with): {', '.join(c.only_new)}")
        if notes:
            out += ["", *notes]
        out.append("")
    return "\n".join(out)


def write_junit(comps: list[Comparison], path: str | Path) -> Path:
    """One test case per row: failure = a blocking verdict (regression, inconclusive, missing,
    partial coverage, not testable), error = not comparable, skipped = shown but not blocking."""
    gate = comps[0].gate
    root = ET.Element("testsuites", name=f"evalkit gate {gate.name}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for c in comps:
        counts = {"tests": len(c.rows), "failures": 0, "errors": 0, "skipped": 0}
        suite = ET.SubElement(root, "testsuite", name=f"{c.base_label} -> {c.new_label}")
        props = ET.SubElement(suite, "properties")
        for k, v in (("base", c.base_dir), ("new", c.new_dir), ("gate", gate.name), ("alpha", gate.alpha),
                     ("confidence", gate.confidence), ("resamples", gate.resamples), ("seed", gate.seed)):
            ET.SubElement(props, "property", name=k, value=str(v))
        for r in c.rows:
            case = ET.SubElement(suite, "testcase", classname=f"evalkit.gate.{r.table}", name=r.name, time="0")
            detail = _detail(r)
            if r.verdict == "not comparable" and r.blocking:
                counts["errors"] += 1
                ET.SubElement(case, "error", type="not comparable", message=r.reason).text = detail
            elif r.blocking:
                counts["failures"] += 1
                ET.SubElement(case, "failure", type=r.verdict, message=_message(r)).text = detail
            elif r.verdict != "pass":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"{verdict_text(r)} (not blocking): {r.reason or _message(r)}")
            ET.SubElement(case, "system-out").text = detail
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    path = Path(path)
    atomic_write_text(path, '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")
    return path


def write_json(comps: list[Comparison], path: str | Path) -> Path:
    """Every number of the comparison, machine-readable (flipped items as counts and ids)."""
    atomic_write_json(path, {"gate": _gate_dict(comps[0]), "passed": all(c.passed for c in comps),
                             "comparisons": [_comp_dict(c) for c in comps]})
    return Path(path)


def _message(r: RowDelta) -> str:
    if r.status != "ok" or r.verdict == "partial coverage":
        return r.reason
    direction = "higher" if r.rule and r.rule.worse == "higher" else "lower"
    head = f"{r.row}: {fmt(r.delta, True)} points [{fmt(r.low, True)}, {fmt(r.high, True)}] ({direction} is worse)"
    if r.verdict.startswith("regression"):
        return f"{head}, beyond the allowed {r.rule.max_drop:g} with p (Holm) = {fmt_p(r.p_beyond_holm)}"
    return (f"{head} on {coverage(r)} items: not shown within the allowed {r.rule.max_drop:g} "
            f"(p = {fmt_p(r.p_within)}); {verdict_text(r)}")


def _detail(r: RowDelta) -> str:
    if r.status != "ok":
        return f"{r.verdict}: {r.reason}"
    return (f"base {fmt(r.base)} -> new {fmt(r.new)}; delta {fmt(r.delta, True)} "
            f"[{fmt(r.low, True)}, {fmt(r.high, True)}]; p = {fmt_p(r.p)}, p (Holm) = {fmt_p(r.p_holm)}; "
            f"{test_text(r)}; items {coverage(r)}; p within the allowed drop = {fmt_p(r.p_within)}, "
            f"p beyond it (Holm) = {fmt_p(r.p_beyond_holm)}; rule: max_drop {r.rule.max_drop:g}, worse = {r.rule.worse} "
            f"({r.rule.source}); verdict: {verdict_text(r)}" if r.rule else "")


def _gate_dict(c: Comparison) -> dict[str, Any]:
    g = c.gate
    return {"name": g.name, "alpha": g.alpha, "confidence": g.confidence, "resamples": g.resamples, "seed": g.seed,
            "policy": g.policy}


def _comp_dict(c: Comparison) -> dict[str, Any]:
    rows = []
    for r in c.rows:
        d = {k: getattr(r, k) for k in ("table", "row", "label", "task", "metric", "scale", "higher_is_better", "status",
                                       "reason", "base", "new", "n", "base_n", "unpaired", "delta", "low", "high", "p",
                                       "p_holm", "p_within", "p_beyond", "p_beyond_holm", "needed", "test",
                                       "resamples", "discordant", "verdict", "blocking")}
        d["rule"] = r.rule.__dict__ if r.rule else None
        d["flips"] = {side: {"count": f["count"], "ids": [i["id"] for i in f["items"]]} for side, f in r.flips.items()}
        rows.append(d)
    return {"base": c.base_dir, "new": c.new_dir, "base_label": c.base_label, "new_label": c.new_label,
            "passed": c.passed, "only_base": c.only_base, "only_new": c.only_new, "rows": rows}


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell (no pipes, no line breaks, no raw HTML)."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")
