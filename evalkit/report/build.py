"""Render run folders into one self-contained HTML report (no scripts, no network).

With one run: the card tables (value ± 95% interval beside the card's values). With
several: one column per run, a delta column per run against the first (paired tests,
coloured only when significant after Holm), the gate verdict per row when a gate is
given, a plot of each row across the runs, and the items that flipped between runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2

from evalkit import __version__
from evalkit.files import atomic_write_text
from evalkit.report.records_view import answer_text, prompt_text, target_text
from evalkit.card import column_labels, reference
from evalkit.report.visible import finalize
from evalkit.rundir import load_results, load_samples

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("evalkit.report", "templates"),
    autoescape=True,  # model outputs are untrusted text
    undefined=jinja2.StrictUndefined,
    finalize=finalize,  # NUL, ESC, U+202E... from model output are shown escaped, not raw
)
_EXAMPLES_PER_TASK = 3


def write_report(run_dirs: list[str | Path], out: str | Path, gate: Any = None, comparisons: list | None = None) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (atomically) and return its path.

    ``gate``: a ``evalkit.compare.gate.Gate`` (verdicts per row) or None (statistics only).
    ``comparisons``: already computed ``compare_all`` results, to avoid recomputing them.
    """
    results = [load_results(d) for d in run_dirs]
    html = render_report(results, gate=gate, comparisons=comparisons)
    out = Path(out)
    atomic_write_text(out, html)
    return out.resolve()


def render_report(results: list[dict[str, Any]], gate: Any = None, comparisons: list | None = None) -> str:
    from evalkit.report.merge import merge_runs
    from evalkit.report.views import drilldowns, run_views, table_views

    results = merge_runs(results)  # one column per model: disjoint runs of one model and config
    labels = column_labels(results)
    if comparisons is None and len(results) > 1:
        from evalkit.compare.rows import compare_all
        from evalkit.compare.gate import no_gate

        comparisons = compare_all(results, gate or no_gate())
        if not any(r.status != "missing" for c in comparisons for r in c.rows):
            comparisons = []  # runs with no task in common (e.g. card_pt + card_code): nothing to compare
    comps = comparisons or []
    gate = comps[0].gate if comps else gate
    tables = table_views(results, labels, comps)
    return _ENV.get_template("card.html.j2").render(
        labels=labels,
        tables=tables,
        plots=[row["svg"] for t in tables for row in t["rows"] if row["svg"]],
        comparisons=comps,
        drilldowns=drilldowns(comps),
        runs=run_views(results, labels, _examples),
        gate=gate if comps and gate.enforced else None,  # a verdict needs something to compare
        alpha=gate.alpha if gate is not None else 0.05,
        failed=[(c, r) for c in comps for r in c.failed] if comps and gate.enforced else [],
        reference=reference(),
        version=__version__,
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _examples(run_dir: str, task: str) -> list[dict[str, Any]]:
    try:
        samples = load_samples(run_dir, task)[:_EXAMPLES_PER_TASK]
    except FileNotFoundError:
        return []
    return [{"id": s["id"], "prompt": prompt_text(s), "answer": answer_text(s), "target": target_text(s),
             "scores": s.get("scores", {})} for s in samples]
