"""Run lm-eval (its HF backend, its own task YAMLs) on exactly the items evalkit evaluated.

lm-eval loads its datasets from the hub; here we swap each task's dataset for local JSON
files holding evalkit's documents converted back to the hub schema the lm-eval YAML
expects, so lm-eval renders *its own* prompt templates over the same items. Few-shot
exemplars are passed the same way: evalkit's shared exemplars as a first-n pool (same
prompt as evalkit), or the whole pool with lm-eval's own per-item random sampler.

Used by the parity and speed benchmarks; not part of the evalkit package.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Doc = dict[str, Any]

# evalkit canonical document -> the hub-schema row lm-eval's YAML reads.
CONVERTERS: dict[str, Callable[[Doc], Doc]] = {
    "arc_easy": lambda d: {
        "id": d["id"],
        "question": d["question"],
        "choices": {"text": list(d["choices"]), "label": [chr(65 + i) for i in range(len(d["choices"]))]},
        "answerKey": chr(65 + int(d["gold"])),
    },
    "mmlu": lambda d: {"id": d["id"], "question": d["question"], "subject": d["group"], "choices": list(d["choices"]),
                       "answer": int(d["gold"])},
    # lm-eval's process_docs rebuilds "<label>: <ctx_a> <Ctx_b>"; with ctx_b empty it gives back our query.
    "hellaswag": lambda d: {"id": d["id"], "activity_label": d["query"].split(": ", 1)[0],
                            "ctx_a": d["query"].split(": ", 1)[1] if ": " in d["query"] else d["query"], "ctx_b": "",
                            "endings": list(d["choices"]), "label": str(d["gold"])},
    "gsm8k": lambda d: {"id": d["id"], "question": d["question"], "answer": d["answer"]},
}
CONVERTERS["arc_challenge"] = CONVERTERS["arc_easy"]
CONVERTERS["bbh"] = lambda d: {"input": d["input"], "target": d["target"]}


def _winogrande_row(d: Doc) -> Doc:
    """llm-foundry's partial-scoring row back to WinoGrande's {sentence, option1, option2, answer}.

    lm-eval rebuilds each context as ``sentence[:sentence.index("_")] + option``; splitting
    the two contexts at their common prefix makes that rebuild exact whatever the prefix.
    """
    a, b = d["context_options"]
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return {"id": d["id"], "sentence": a[:k] + "_ " + d["continuation"], "option1": a[k:], "option2": b[k:],
            "answer": str(int(d["gold"]) + 1)}


CONVERTERS.update({
    "piqa": lambda d: {"id": d["id"], "goal": d["goal"], "sol1": d["choices"][0], "sol2": d["choices"][1],
                       "label": int(d["gold"])},
    "boolq": lambda d: {"idx": d["id"], "passage": d["passage"], "question": d["question"], "label": int(d["gold"])},
    "winogrande": _winogrande_row,
    "siqa": lambda d: {"context": d["context"], "question": d["question"],
                       **{f"answer{k}": c for k, c in zip("ABC", d["choices"])}, "label": str(int(d["gold"]) + 1)},
})

# evalkit task (and group) -> lm-eval task name
LM_EVAL_TASK: dict[str, Callable[[str], str]] = {
    "arc_easy": lambda g: "arc_easy",
    "arc_challenge": lambda g: "arc_challenge",
    "mmlu": lambda g: f"mmlu_{g}",
    "hellaswag": lambda g: "hellaswag",
    "gsm8k": lambda g: "gsm8k",
    "piqa": lambda g: "piqa",
    "boolq": lambda g: "boolq",
    "winogrande": lambda g: "winogrande",
    "siqa": lambda g: "social_iqa",
    "bbh": lambda g: f"bbh_cot_fewshot_{g}",
}

# New-token caps set to evalkit's, so both tools stop at the same length (lm-eval's BBH
# YAML allows 1,024; evalkit's task allows 512).
GEN_CAP: dict[str, int] = {"bbh": 512}


@dataclass
class LmEvalItem:
    task: str
    group: str
    id: str
    prompt: str  # the context lm-eval built (first option's, for multiple choice)
    pred: int | None = None  # argmax log-likelihood
    pred_norm: int | None = None  # argmax per-character log-likelihood (acc_norm)
    logprobs: list[float] | None = None
    output: str | None = None  # generation (after lm-eval's filters)
    raw_output: str | None = None  # generation, as the model wrote it
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class LmEvalRun:
    items: list[LmEvalItem]
    wall_seconds: float
    load_seconds: float
    batch_size: Any
    raw_metrics: dict[str, Any]


def _base_config(lm_eval_task: str) -> dict[str, Any]:
    """lm-eval's own YAML config of a task (includes and !function resolved)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(_task_manager()._index[lm_eval_task].yaml_path, resolve_func=True, recursive=True)


_TM = None


def _task_manager():
    global _TM
    if _TM is None:
        from lm_eval.tasks import TaskManager

        _TM = TaskManager()
    return _TM


def _write_jsonl(path: Path, rows: list[Doc]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def task_config(task: str, group: str, docs: list[Doc], fewshot_docs: list[Doc] | None, num_fewshot: int,
                sampler: str, workdir: Path) -> dict[str, Any]:
    """An lm-eval task config for ``docs`` (evalkit canonical documents) of one evalkit task/group."""
    name = LM_EVAL_TASK[task](group)
    cfg = _base_config(name)
    convert = CONVERTERS[task]
    folder = workdir / f"{task}__{group or 'all'}"
    folder.mkdir(parents=True, exist_ok=True)
    _write_jsonl(folder / "test.jsonl", [convert(d) for d in docs])
    files = {"test": str(folder / "test.jsonl")}
    if fewshot_docs:
        _write_jsonl(folder / "train.jsonl", [convert(d) for d in fewshot_docs])
        files["train"] = str(folder / "train.jsonl")
    for key in ("tag", "group", "dataset_name", "validation_split", "training_split", "task_alias"):
        cfg.pop(key, None)
    inline = (cfg.get("fewshot_config") or {}).get("samples")
    cfg.update(
        task=f"bridge__{name}",
        dataset_path="json",
        dataset_kwargs={"data_files": files},
        test_split="test",
        fewshot_split="train" if fewshot_docs else None,
        num_fewshot=num_fewshot,
        # Tasks whose exemplars live in the YAML (BBH's CoT prompts) keep them.
        fewshot_config=cfg["fewshot_config"] if inline and not fewshot_docs else {"sampler": sampler},
    )
    if task in GEN_CAP:
        cfg["generation_kwargs"] = {**cfg.get("generation_kwargs", {}), "max_gen_toks": GEN_CAP[task]}
    return cfg


def run_lm_eval(
    groups: list[tuple[str, str, list[Doc], list[Doc] | None]],
    *,
    model_path: str,
    num_fewshot: int,
    sampler: str = "first_n",
    batch_size: int | str = 8,
    fewshot_seed: int = 1234,
    dtype: str = "float32",
) -> LmEvalRun:
    """Run lm-eval on ``groups`` = [(evalkit task, group, eval docs, few-shot pool or None)].

    ``sampler="first_n"`` with evalkit's shared exemplars as the pool reproduces evalkit's
    prompts; ``sampler="default"`` with the whole pool is lm-eval's per-item random draw.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    t0 = time.perf_counter()
    lm = HFLM(pretrained=model_path, dtype=dtype, batch_size=batch_size, device="cpu")
    load = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="lm_eval_bridge_") as tmp:
        configs = [task_config(t, g, docs, fs, num_fewshot, sampler, Path(tmp)) for t, g, docs, fs in groups]
        t1 = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model=lm, tasks=configs, log_samples=True, bootstrap_iters=0, fewshot_random_seed=fewshot_seed,
            random_seed=fewshot_seed, numpy_random_seed=fewshot_seed, torch_random_seed=fewshot_seed,
            verbosity="WARNING",
        )
        wall = time.perf_counter() - t1
    items: list[LmEvalItem] = []
    for (task, group, docs, _), cfg in zip(groups, configs):
        items.extend(_items(task, group, docs, out["samples"][cfg["task"]]))
    return LmEvalRun(items, wall, load, batch_size, out["results"])


def _items(task: str, group: str, docs: list[Doc], samples: list[dict[str, Any]]) -> list[LmEvalItem]:
    by_doc: dict[int, LmEvalItem] = {}
    for s in samples:
        i = int(s["doc_id"])
        item = by_doc.get(i)
        if item is None:
            args = s["arguments"]
            first = args[0] if isinstance(args, (list, tuple)) else args
            prompt = first[0] if isinstance(first, (list, tuple)) else first
            item = by_doc[i] = LmEvalItem(task, group, str(docs[i]["id"]), prompt)
        resps = s["filtered_resps"]
        if resps and isinstance(resps[0], (list, tuple)) and len(resps[0]) == 2 and isinstance(resps[0][1], bool):
            lls = [float(r[0]) for r in resps]
            choices = [a[1] for a in s["arguments"]]
            item.logprobs = lls
            item.pred = int(np.argmax(lls))
            # acc_norm divides by the choice's length without lm-eval's " " target delimiter
            lens = np.array([float(len(c[1:]) if c.startswith(" ") else len(c)) for c in choices])
            item.pred_norm = int(np.argmax(np.array(lls) / lens))
        else:
            item.output = resps[0] if isinstance(resps, list) else resps
            raw = s.get("resps") or []
            if raw and isinstance(raw[0], (list, tuple)) and raw[0]:
                item.raw_output = raw[0][0]
        for metric in ("acc", "acc_norm", "exact_match"):
            if metric in s:
                key = metric if "filter" not in s or s["filter"] == "none" else f"{metric},{s['filter']}"
                item.scores[key] = float(s[metric])
        if "filter" in s and s["filter"] != "none":
            out = s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"]
            # lm-eval's regex filter answers "[invalid]" where evalkit's extraction answers None.
            item.scores[f"output,{s['filter']}"] = None if out == "[invalid]" else out
    return [by_doc[i] for i in sorted(by_doc)]


def agreement(pairs: list[tuple[Any, Any]]) -> float:
    """Fraction of (evalkit, lm-eval) prediction pairs that agree."""
    return float(np.mean([a == b for a, b in pairs])) if pairs else float("nan")
