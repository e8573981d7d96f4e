"""Plain-text views of per-sample records for people: what was asked, answered, expected.

Works on any record type the runner writes (multiple choice, generation, rolling); the
text is model output and stays plain text (the template escapes it).
"""

from __future__ import annotations

import json
from typing import Any

Record = dict[str, Any]
PROMPT_TAIL = 2000  # characters of a prompt shown (its end: the question, not the shots)


def prompt_text(rec: Record, tail: int = PROMPT_TAIL) -> str:
    """The prompt (or scored text), cut to its last ``tail`` characters."""
    text = str(rec.get("prompt") or rec.get("text") or "")
    return text if len(text) <= tail else "…" + text[-tail:]


def answer_text(rec: Record) -> str:
    """What the model answered: its generations (numbered when there are several, with the
    extracted answers), the option it picked, or the log-probability of a scored text."""
    if "outputs" in rec:
        outputs = [str(o) for o in rec.get("outputs") or []]
        extracted = rec.get("extracted") or []
        parts = []
        for i, out in enumerate(outputs):
            ex = extracted[i] if i < len(extracted) else None
            # Extractions that only repeat the text (e.g. identity extraction) are noise.
            shown = {k: v for k, v in (ex or {}).items() if v is not None and str(v).strip() != out.strip()}
            text = out + ("\n→ extracted: " + json.dumps(shown, ensure_ascii=False) if shown else "")
            parts.append(f"[{i + 1}] {text}" if len(outputs) > 1 else text)
        return "\n".join(parts)
    if "choices" in rec and rec.get("pred") is not None:
        pred = int(rec["pred"])
        choice = rec["choices"][pred] if 0 <= pred < len(rec["choices"]) else "?"
        return f"picked ({pred}) {choice}"
    if "logprob" in rec:
        return f"log-prob {rec['logprob']}"
    return ""


def target_text(rec: Record) -> str:
    """The expected answer: the target text(s), or the gold option(s) of a multiple choice."""
    if rec.get("target") is not None:
        t = rec["target"]
        return " | ".join(map(str, t)) if isinstance(t, list) else str(t)
    gold = rec.get("gold")
    if gold is None:
        return ""
    golds = gold if isinstance(gold, list) else [gold]
    choices = rec.get("choices") or []
    return " | ".join(f"({g}) {choices[g]}" if isinstance(g, int) and 0 <= g < len(choices) else str(g) for g in golds)
