"""Model-card export: the Hugging Face ``model-index`` metadata and a Markdown table.

``evalkit report RUN... --format model-index`` writes a README.md-ready file: YAML front
matter with one ``model-index`` entry per run (task, dataset id/config/split/revision from
the task spec's hub source, metric type and value in points on the card's scale, and the
run folder as the source) followed by the card table in Markdown. ``--format md`` gives the
table alone (a pull-request comment). Built with ``huggingface_hub``'s own ``EvalResult``
and ``ModelCardData``, so the Hub reads exactly what is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.card import card_frame, column_labels, row_entries

TASK_TYPE = ("text-generation", "Text Generation")  # every evalkit task scores a causal LM
DIGITS = 2  # as the card shows them


def eval_results(res: dict[str, Any], source_url: str | None = None) -> list[Any]:
    """One ``huggingface_hub.EvalResult`` per card row of run ``res`` (a ``load_results`` dict)."""
    from huggingface_hub import EvalResult

    from evalkit.tasks import load_task

    url = source_url or (Path(res["run_dir"]) / "results.json").resolve().as_uri()
    out = []
    for task, tr in res["tasks"].items():
        hub = _hub_source(task, load_task)
        for e in row_entries(task, tr):
            m = tr["metrics"].get(e["metric"])
            if m is None or m.get("value") is None:
                continue
            out.append(EvalResult(
                task_type=TASK_TYPE[0], task_name=TASK_TYPE[1],
                dataset_type=hub.get("path") or f"evalkit/{task}", dataset_name=e["row"],
                dataset_config=hub.get("name"), dataset_split=(hub.get("splits") or {}).get("eval"),
                dataset_revision=hub.get("revision"),
                metric_type=e["metric"], metric_value=round(float(m["value"]) * e["scale"], DIGITS),
                metric_name=f"{e['row']} ({e['label']})" if e["label"] else e["row"],
                verified=False, source_name="evalkit", source_url=url))
    return out


def _hub_source(task: str, load_task: Any) -> dict[str, Any]:
    try:
        return dict((load_task(task).raw.get("source") or {}).get("hub") or {})
    except Exception:  # noqa: BLE001 - a task file renamed since the run: the row is still exported
        return {}


def model_index_card(results: list[dict[str, Any]], source_url: str | None = None) -> str:
    """A README.md text: ``model-index`` front matter (one entry per run) and the table."""
    import yaml
    from huggingface_hub.repocard_data import eval_results_to_model_index

    labels = column_labels(results)
    index = []
    for label, res in zip(labels, results):
        index += eval_results_to_model_index(label, eval_results(res, source_url))
    front = yaml.safe_dump({"model-index": index}, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n## Evaluation\n\n{markdown_table(results)}"


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The card table in Markdown: one column per run, values in points with their 95% interval."""
    frame = card_frame(results, with_reference=False)
    if frame.empty:
        return "_no card rows_\n"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(_cell(c) for c in cols) + " |",
             "|" + "|".join("---" if c in ("Table", "Benchmark", "Metric") else "--:" for c in cols) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    note = ("\nValues in points with their 95% interval: [low, high] (Wilson for proportions) or ± the "
            "half-width of a normal interval; n is the number of items. Produced by evalkit.\n")
    return "\n".join(lines) + "\n" + note


def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")
