"""What a card row measured, beside its number: n, how much of the benchmark it covered
("2 of 57 subjects") and which scorer produced it, noted when that is not the scorer of
the card's published values (``reports/gemma2_card.yaml``, ``scorer:`` per row)."""

from __future__ import annotations

from typing import Any


def coverage(task_result: dict[str, Any], entry: dict[str, Any], metric: dict[str, Any]) -> str:
    """``"2 of 57 subjects"`` when the run covered part of a benchmark's subsets, else ``""``.

    The benchmark's count comes from the task's card entry (``subsets: {total, unit}``);
    the run's from the groups its metric was computed over."""
    sub = entry.get("subsets") or (task_result.get("card") or {}).get("subsets")
    if not sub:
        return ""
    seen = len(metric.get("breakdown") or {}) or len(task_result.get("groups") or [])
    total = int(sub["total"])
    return f"{seen} of {total} {sub.get('unit', 'subsets')}" if 0 < seen < total else ""


def scorer_label(scorer: dict[str, Any] | None) -> str:
    """A scorer as people name it: ``perspective``, ``hf_classifier tomh/toxigen_roberta``."""
    if not scorer:
        return ""
    model = scorer.get("model")
    return f"{scorer.get('name', '?')} {model}" if model else str(scorer.get("name", "?"))


def scorer_note(task_result: dict[str, Any], reference_row: dict[str, Any] | None) -> tuple[str, str]:
    """(scorer label, note) for a scorer-based row; the note says when the card's values
    came from another scorer, so the two columns are not read as comparable."""
    scorer = (task_result.get("judge") or {}).get("scorer")
    if not scorer:
        return "", ""
    label = scorer_label(scorer)
    ref = (reference_row or {}).get("scorer")
    if not ref:
        return label, ""
    same = ref.get("name") == scorer.get("name") and (not ref.get("model") or _same_model(ref["model"], scorer.get("model")))
    return label, "" if same else f"card used {ref.get('label') or scorer_label(ref)}; not comparable"


def _same_model(a: str, b: Any) -> bool:
    return bool(b) and str(a).rstrip("/").rsplit("/", 1)[-1] == str(b).rstrip("/").rsplit("/", 1)[-1]


def facts(task_result: dict[str, Any], entry: dict[str, Any], metric: dict[str, Any],
          reference_row: dict[str, Any] | None) -> dict[str, str]:
    """The row's ``coverage``, ``scorer`` and ``scorer_note`` (empty strings when none apply)."""
    label, note = scorer_note(task_result, reference_row)
    return {"coverage": coverage(task_result, entry, metric), "scorer": label, "scorer_note": note}


def measured_text(n: Any, coverage_text: str) -> str:
    """``"n=4; 2 of 57 subjects"``: what a cell's number was computed over."""
    parts = [f"n={n}"] if n is not None else []
    return "; ".join(parts + ([coverage_text] if coverage_text else []))
