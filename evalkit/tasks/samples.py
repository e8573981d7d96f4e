"""Turn a task spec and its documents into samples: prompts plus what to ask of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import DataError
from evalkit.tasks.data import Doc, load_docs
from evalkit.tasks.fewshot import by_group, per_item_sampler, shared_exemplars
from evalkit.tasks.spec import TaskSpec
from evalkit.tasks.templating import TemplateError, evaluate, render


@dataclass(frozen=True)
class Prompt:
    """A few-shot prompt before any chat formatting.

    ``shots`` are (question, answer) pairs. As plain text this is
    ``description + (q + target_delimiter + a + fewshot_delimiter) * shots + query``.
    """

    query: str
    shots: tuple[tuple[str, str], ...] = ()
    description: str = ""
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"

    def as_text(self) -> str:
        parts = [self.description]
        for q, a in self.shots:
            parts.append(q + self.target_delimiter + a + self.fewshot_delimiter)
        parts.append(self.query)
        return "".join(parts)


@dataclass
class Sample:
    """One evaluated item."""

    task: str
    id: str
    group: str
    doc: Doc
    prompt: Prompt
    # multiple_choice: the continuations to score, and per-option prompts when the
    # options differ in their context (partial scoring) instead of their continuation
    continuations: list[str] = field(default_factory=list)
    option_prompts: list[Prompt] | None = None
    gold: Any = None
    target: Any = None  # generate: reference answer(s)
    text: str | None = None  # rolling: the text to score

    @property
    def is_partial(self) -> bool:
        return self.option_prompts is not None


def build_samples(spec: TaskSpec, data_root: Path | None, limit: int | None = None) -> tuple[list[Sample], dict[str, Any]]:
    """Samples of ``spec`` (first ``limit`` per group), plus data info for the results."""
    docs = load_docs(spec, "eval", data_root)
    if spec.groups:
        wanted = set(spec.groups)
        known = {str(d.get("group", "")) for d in docs}
        missing = sorted(wanted - known)
        if missing:
            raise DataError(f"task {spec.name}: unknown group(s) {', '.join(missing)}; available: {', '.join(sorted(known))}")
        docs = [d for d in docs if str(d.get("group", "")) in wanted]
    fs = spec.fewshot
    n_shot = fs["n"]
    same_split = fs["split"] == "eval"
    pool: list[Doc] = []
    if n_shot and fs["docs"] is not None:
        # Exemplars written in the spec itself (a published fixed prompt, e.g. Minerva's MATH 4-shot).
        pool = [{**d, "id": str(d.get("id", f"fewshot.docs[{i}]")), "_where": f"{spec.path}:fewshot.docs[{i}]"}
                for i, d in enumerate(fs["docs"])]
        same_split = False
    elif n_shot:
        pool = docs if same_split else load_docs(spec, fs["split"], data_root)
        if spec.groups and not same_split:
            pool = [d for d in pool if str(d.get("group", "")) in set(spec.groups)]
        # A pool read from the evaluated file itself counts as the same split.
        same_split = same_split or bool(pool) and pool[0]["_where"] in {d["_where"] for d in docs}
    shared = shared_exemplars(pool, n_shot, fs["select"], fs["seed"], fs["allow_fewer"]) if n_shot and fs["shared"] else {}
    if shared and spec.raw.get("exclude_fewshot_from_eval", True):
        # An exemplar is never also evaluated (the pool may be the evaluated file itself).
        used = {d["_where"] for ex in shared.values() for d in ex}
        docs = [d for d in docs if d["_where"] not in used]
    limit = spec.limit or limit
    selected: list[Doc] = []
    for group_docs in by_group(docs).values():
        selected.extend(group_docs[:limit] if limit else group_docs)
    sampler = per_item_sampler(pool, n_shot, fs["select"], fs["seed"], same_split) if n_shot and not fs["shared"] else None
    samples = []
    for doc in selected:
        # An ungrouped pool (exemplars written in the spec) serves every group.
        exemplars = shared.get(str(doc.get("group", "")), shared.get("", [])) if shared else (sampler(doc) if sampler else [])
        samples.append(_sample(spec, doc, exemplars))
    if not samples:
        # An empty split must not "succeed" with n=0 and NaN scores.
        raise DataError(f"task {spec.name}: no items to evaluate ({len(docs)} rows left after filters, groups and "
                        "few-shot exclusion); check the data files and the task's filter/groups")
    info = {"n_docs": len(docs), "n_selected": len(selected), "fewshot_ids": sorted({d["id"] for ex in shared.values() for d in ex})}
    return samples, info


def _eval(spec: TaskSpec, key: str, doc: Doc) -> Any:
    try:
        return evaluate(spec.raw[key], doc)
    except TemplateError as e:
        raise DataError(f"{doc.get('_where', '?')}: task {spec.name}, {key} ({spec.raw[key]!r}): {e}") from None


def _render(spec: TaskSpec, key: str, source: str, doc: Doc) -> str:
    try:
        return render(source, doc)
    except TemplateError as e:
        raise DataError(f"{doc.get('_where', '?')}: task {spec.name}, {key}: {e}") from None


def _exemplar_answer(spec: TaskSpec, doc: Doc) -> str:
    tmpl = spec.fewshot["target"]
    if tmpl is not None:
        return _render(spec, "fewshot.target", tmpl, doc)
    if spec.type == "multiple_choice":
        gold = _gold(spec, doc)
        choices = _eval(spec, "choices", doc)
        return str(choices[gold[0]])
    target = _eval(spec, "target", doc)
    return str(target[0] if isinstance(target, (list, tuple)) else target)


def _gold(spec: TaskSpec, doc: Doc) -> list[int]:
    gold = _eval(spec, "gold", doc)
    golds = list(gold) if isinstance(gold, (list, tuple)) else [gold]
    try:
        return [int(g) for g in golds]
    except (TypeError, ValueError):
        raise DataError(f"{doc.get('_where', '?')}: task {spec.name}: gold must be an integer index (got {gold!r})") from None


def _sample(spec: TaskSpec, doc: Doc, exemplars: Sequence[Doc]) -> Sample:
    p = spec.prompt
    # ``shot_number`` (1-based) lets a prompt number its problems (AGIEval's "Problem 3.");
    # the evaluated item is number len(exemplars) + 1.
    shots = tuple((_render(spec, "prompt.text", p["text"], {**ex, "shot_number": i + 1}), _exemplar_answer(spec, ex))
                  for i, ex in enumerate(exemplars))
    description = _render(spec, "prompt.description", p["description"], doc)
    doc_vars = {**doc, "shot_number": len(exemplars) + 1}

    def prompt(query: str) -> Prompt:
        return Prompt(query, shots, description, p["target_delimiter"], p["fewshot_delimiter"])

    s = Sample(spec.name, str(doc["id"]), str(doc.get("group", "")), doc, prompt(""))
    if spec.type == "rolling":
        s.text = str(_eval(spec, "text", doc))
        return s
    if spec.type == "generate":
        s.prompt = prompt(_render(spec, "prompt.text", p["text"], doc_vars))
        s.target = _eval(spec, "target", doc)
        return s
    gold = _gold(spec, doc)
    choices = [str(c) for c in _eval(spec, "choices", doc)]
    if len(choices) < 2:
        raise DataError(f"{doc.get('_where', '?')}: task {spec.name}: choices must list at least 2 options (got {choices!r})")
    bad = [g for g in gold if not 0 <= g < len(choices)]
    if bad:
        raise DataError(f"{doc.get('_where', '?')}: task {spec.name}: gold index {bad[0]} is out of range for {len(choices)} choices")
    s.gold = gold if len(gold) > 1 else gold[0]
    s.continuations = choices
    if "contexts" in spec.raw:
        contexts = [str(c) for c in _eval(spec, "contexts", doc)]
        if len(contexts) != len(choices):
            raise DataError(f"{doc.get('_where', '?')}: task {spec.name}: {len(contexts)} contexts for {len(choices)} choices")
        s.option_prompts = [prompt(c) for c in contexts]
        s.prompt = s.option_prompts[0]
    else:
        s.prompt = prompt(_render(spec, "prompt.text", p["text"], doc_vars))
    return s
