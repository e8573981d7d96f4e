"""Generation batches grouped by shared prompt prefix.

Prompts that start with the same tokens (few-shot exemplars, a chat header, the ``n``
samples of one prompt) are grouped under their longest useful shared prefix (the token
trie of ``prefix_tree``); that prefix is run once and every batch below it starts from
its cache, running only its rows' own prompt tokens before decoding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from evalkit.backends.hf.batching import plan_batches
from evalkit.backends.hf.prefix_cache import PrefixCache, walk_prefixes
from evalkit.backends.hf.prefix_tree import MIN_SAVED_TOKENS, build_prefix_tree

if TYPE_CHECKING:
    from evalkit.backends.hf.engine import Engine

#: Decoding budget on CPU, in forward-pass budgets (2048 tokens: about 14 rows of a
#: 1,100-token few-shot prompt plus 256 new tokens).
DECODE_ROWS_FACTOR = 8


def decode_budget(engine: "Engine") -> int:
    """Tokens of key/value cache the rows decoding together may hold (see ``shared_batches``)."""
    return engine.max_batch_tokens * (DECODE_ROWS_FACTOR if engine.device.type == "cpu" else 1)


def split_rows(engine: "Engine", contexts: Sequence[list[int]], max_new: Sequence[int]) -> tuple[list[int], list[int]]:
    """``(rows that fit the fast path, the rest)`` (see ``Engine.fast_path_fits``)."""
    rows = [j for j, c in enumerate(contexts) if c and engine.fast_path_fits(len(c) + max_new[j])]
    rest = sorted(set(range(len(contexts))) - set(rows))
    return rows, rest


def fallback_batches(engine: "Engine", contexts: Sequence[list[int]], max_new: Sequence[int],
                     rest: Sequence[int]) -> list[list[int]]:
    """Batches (of row indices) of the rows ``rest`` that do not fit the fast path, each
    budgeted by its prompt plus the tokens still to come."""
    plan = plan_batches([len(contexts[j]) + max_new[j] for j in rest], engine.max_batch_tokens, engine.batch_size)
    return [[rest[k] for k in b] for b in plan]


def prefix_groups(engine: "Engine", contexts: Sequence[list[int]],
                  rows: Sequence[int]) -> tuple[dict[int, int], Iterator[tuple[PrefixCache | None, list[int]]]]:
    """``rows`` grouped under their longest useful shared prefix: ``({row: its prefix's
    length}, groups)``, each group with that prefix's cache (None for rows that share
    none), computed as the groups are consumed."""
    # One trie entry per row, so the n samples of one prompt share all of it but its last token.
    ctx = [contexts[j] for j in rows]
    tree = build_prefix_tree(ctx, MIN_SAVED_TOKENS)
    lengths = {rows[k]: node.length for node in tree.walk() for k in node.items}

    def groups() -> Iterator[tuple[PrefixCache | None, list[int]]]:
        for node, prefix in walk_prefixes(engine, tree, ctx):
            if node.items:
                yield prefix, [rows[k] for k in node.items]

    return lengths, groups()


def shared_batches(engine: "Engine", contexts: Sequence[list[int]],
                   max_new: Sequence[int]) -> Iterator[tuple[PrefixCache | None, list[list[int]]]]:
    """Batches of row indices, each with the prefix cache its rows start from.

    A batch is budgeted by the key/value cache its rows hold at the end (prefix, own
    prompt and new tokens per row). On CPU that budget is ``DECODE_ROWS_FACTOR`` times
    the forward-pass budget: a decoding step runs one token per row, so more rows cost
    little more than one while the weights are read once per step. Rows that do not fit
    the fast path (see ``Engine.fast_path_fits``) come first, without a prefix.
    """
    rows, rest = split_rows(engine, contexts, max_new)
    if rest:
        yield None, fallback_batches(engine, contexts, max_new, rest)
    if not rows:
        return
    budget = decode_budget(engine)
    for prefix, members in prefix_groups(engine, contexts, rows)[1]:
        plan = plan_batches([len(contexts[j]) + max_new[j] for j in members], budget, engine.batch_size)
        yield prefix, [[members[k] for k in b] for b in plan]
