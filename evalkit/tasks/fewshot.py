"""Few-shot exemplar selection.

Default (``shared: true``): one draw of ``n`` exemplars per group (MMLU subject, or the
whole task), so every item of the group starts with the same prefix and a backend can
compute it once. ``shared: false`` reproduces lm-eval's per-item draws: one
``random.Random(seed)`` per group, sampled afresh for each item in document order, drawing
one extra when exemplars come from the evaluated split and dropping the item itself.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable

from evalkit.errors import DataError
from evalkit.tasks.data import Doc


def group_of(doc: Doc) -> str:
    return str(doc.get("group", ""))


def by_group(docs: list[Doc]) -> "OrderedDict[str, list[Doc]]":
    groups: OrderedDict[str, list[Doc]] = OrderedDict()
    for d in docs:
        groups.setdefault(group_of(d), []).append(d)
    return groups


def shared_exemplars(pool: list[Doc], n: int, select: str, seed: int, allow_fewer: bool = False) -> dict[str, list[Doc]]:
    """One list of ``n`` exemplars per group of ``pool`` (all of a smaller group's with ``allow_fewer``)."""
    out = {}
    for group, docs in by_group(pool).items():
        if allow_fewer and len(docs) < n:
            out[group] = list(docs)
            continue
        if len(docs) < n:
            raise DataError(f"few-shot pool of group {group or '(all)'!r} has {len(docs)} documents, fewer than n={n}")
        out[group] = docs[:n] if select == "first" else random.Random(seed).sample(docs, n)
    return out


def per_item_sampler(pool: list[Doc], n: int, select: str, seed: int, same_split: bool) -> Callable[[Doc], list[Doc]]:
    """A function giving each item its own exemplars; call it in document order."""
    groups = by_group(pool)
    rngs = {g: random.Random(seed) for g in groups}

    def sample(doc: Doc) -> list[Doc]:
        g = group_of(doc)
        docs = groups.get(g, [])
        if select == "first":
            return [d for d in docs[: n + 1] if d["_where"] != doc["_where"]][:n]
        k = n + 1 if same_split else n
        if len(docs) < k:
            raise DataError(f"few-shot pool of group {g or '(all)'!r} has {len(docs)} documents, fewer than {k}")
        drawn = rngs[g].sample(docs, k)
        return [d for d in drawn if d["_where"] != doc["_where"]][:n]

    return sample
