"""Per-sample records: what was asked, what the model answered, and (later) the scores."""

from __future__ import annotations

from typing import Any

from evalkit.backends.requests import GenerateResult, LoglikelihoodResult, Request, Result, RollingResult, request_key
from evalkit.metrics.choice import predict
from evalkit.metrics.extract import apply_extractions
from evalkit.tasks import Sample, TaskSpec

Record = dict[str, Any]


def build_record(spec: TaskSpec, sample: Sample, requests: list[Request], results: dict[str, Result]) -> Record:
    """The JSON-ready record of one sample, from its requests' answers."""
    doc = {k: v for k, v in sample.doc.items() if not k.startswith("_")}
    rec: Record = {"id": sample.id, "group": sample.group, "doc": doc, "where": sample.doc.get("_where")}
    answers = [results[request_key(r)] for r in requests]
    cut = [getattr(a, "truncated", 0) for a in answers]
    if any(cut):
        # The model saw only the end of these prompts; counted per task in results.json.
        rec["truncated_requests"] = sum(1 for c in cut if c)
        rec["truncated_tokens"] = sum(cut)
    if spec.type == "multiple_choice":
        lls = [a for a in answers if isinstance(a, LoglikelihoodResult)]
        rec.update(
            prompt=requests[0].context,  # type: ignore[union-attr]
            choices=sample.continuations,
            continuations=[r.continuation for r in requests],  # type: ignore[union-attr]
            gold=sample.gold,
            logprobs=[a.logprob for a in lls],
            is_greedy=[a.is_greedy for a in lls],
            n_tokens=[a.n_tokens for a in lls],
            pred=predict([a.logprob for a in lls]),
        )
        if sample.is_partial:
            rec["contexts"] = [r.context for r in requests]  # type: ignore[union-attr]
    elif spec.type == "generate":
        (gen,) = answers
        assert isinstance(gen, GenerateResult)
        rec.update(
            prompt=requests[0].context,  # type: ignore[union-attr]
            target=sample.target,
            outputs=list(gen.texts),
            n_tokens=list(gen.n_tokens),
            extracted=[apply_extractions(t, spec.raw.get("extract")) for t in gen.texts],
        )
    else:
        (roll,) = answers
        assert isinstance(roll, RollingResult)
        rec.update(text=sample.text, logprob=roll.logprob, n_tokens=roll.n_tokens)
    return rec


def truncation_counts(records: list[Record]) -> dict[str, int]:
    """How many requests (and items) of a task had their prompt cut to fit the model's window."""
    return {"requests": sum(r.get("truncated_requests", 0) for r in records),
            "items": sum(1 for r in records if r.get("truncated_requests")),
            "tokens": sum(r.get("truncated_tokens", 0) for r in records)}
