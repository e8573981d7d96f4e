"""Match the per-sample records of one task in two run folders, item by item.

Two runs are comparable on a task only when the task hash is the same (same data
mapping, prompt, shots, extraction and metrics) and each shared item id holds the same
document. Anything else is refused with a one-line reason: a delta between different
prompts or different items is not a regression signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.rundir import load_samples

Record = dict[str, Any]


class NotComparable(Exception):
    """The two runs cannot be compared on this task; the message says why in one line."""


@dataclass
class PairedTask:
    """The records of one task, aligned by item id (``base[i]`` and ``new[i]`` are the same item)."""

    task: str
    ids: list[str]
    base: list[Record]
    new: list[Record]
    base_all: list[Record]  # every record of the base run (for checking a recomputed metric)
    new_all: list[Record]
    only_base: int  # items only one run has (a different limit or subset)
    only_new: int


def pair_task(base_res: dict[str, Any], new_res: dict[str, Any], task: str) -> PairedTask:
    """Records of ``task`` in both runs, matched by id, or ``NotComparable``."""
    tb, tn = base_res["tasks"][task], new_res["tasks"][task]
    if tb.get("hash") != tn.get("hash"):
        raise NotComparable(f"{task}: task hashes differ ({tb.get('hash')} vs {tn.get('hash')}): the prompt, "
                            "shots, data mapping or metric changed, so the numbers are not comparable")
    base = _records(base_res, task)
    new = _records(new_res, task)
    by_id_new = _by_id(new, task, new_res)
    by_id_base = _by_id(base, task, base_res)
    ids = [i for i in by_id_base if i in by_id_new]
    if not ids:
        raise NotComparable(f"{task}: the two runs share no item ids (different data files or splits?)")
    for i in ids:
        if by_id_base[i].get("doc") != by_id_new[i].get("doc"):
            raise NotComparable(f"{task}: item {i!r} holds different data in the two runs "
                                "(different data_root or data version?)")
    return PairedTask(task, ids, [by_id_base[i] for i in ids], [by_id_new[i] for i in ids], base, new,
                      len(by_id_base) - len(ids), len(by_id_new) - len(ids))


def _records(res: dict[str, Any], task: str) -> list[Record]:
    try:
        return load_samples((res.get("task_run_dirs") or {}).get(task, res["run_dir"]), task)  # merged runs
    except FileNotFoundError:
        raise NotComparable(f"{task}: {res['run_dir']} has no per-sample records (samples/{task}.jsonl)") from None


def _by_id(records: list[Record], task: str, res: dict[str, Any]) -> dict[str, Record]:
    out: dict[str, Record] = {}
    for r in records:
        key = str(r.get("id"))
        if key in out:
            raise NotComparable(f"{task}: item id {key!r} appears twice in {res['run_dir']}; items cannot be paired")
        out[key] = r
    return out
