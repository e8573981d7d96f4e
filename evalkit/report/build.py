"""Render run folders into one self-contained HTML card (no scripts, no network)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2

from evalkit import __version__
from evalkit.files import atomic_write_text
from evalkit.report.table import TABLES, card_frame, column_labels, reference
from evalkit.runner.rundir import load_results, load_samples

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("evalkit.report", "templates"),
    autoescape=True,  # model outputs are untrusted text
    undefined=jinja2.StrictUndefined,
)
_EXAMPLES_PER_TASK = 3


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write the card for ``run_dirs`` to ``out`` (atomically) and return its path."""
    results = [load_results(d) for d in run_dirs]
    html = render_report(results)
    out = Path(out)
    atomic_write_text(out, html)
    return out.resolve()


def render_report(results: list[dict[str, Any]]) -> str:
    tables = []
    for t in TABLES:
        frame = card_frame(results, table=t)
        if len(frame):
            tables.append({"name": t, "columns": list(frame.columns), "rows": frame.values.tolist()})
    runs = []
    for label, res in zip(column_labels(results), results):
        runs.append({
            "label": label,
            "res": res,
            "tasks": [
                {"name": name, "tr": tr, "examples": _examples(res["run_dir"], name, tr)}
                for name, tr in res["tasks"].items()
            ],
        })
    return _ENV.get_template("card.html.j2").render(
        tables=tables, runs=runs, reference=reference(), version=__version__,
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _examples(run_dir: str, task: str, tr: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        samples = load_samples(run_dir, task)[:_EXAMPLES_PER_TASK]
    except FileNotFoundError:
        return []
    out = []
    for s in samples:
        if "outputs" in s:
            answer = s["outputs"][0]
        elif "choices" in s:
            answer = f"picked {s['pred']}: {s['choices'][s['pred']]}"
        else:
            answer = f"log-prob {s.get('logprob')}"
        out.append({"id": s["id"], "prompt": s.get("prompt") or s.get("text", ""), "answer": answer,
                    "target": s.get("target", s.get("gold")), "scores": s.get("scores", {})})
    return out
