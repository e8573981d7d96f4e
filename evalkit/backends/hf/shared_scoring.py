"""Log-likelihood with every shared token computed once.

Three levels of sharing, all exact (the same tokens at the same positions, attending to
the same tokens, as the straightforward path):

1. identical ``(context, continuation)`` token pairs are scored once;
2. the continuations of one context form one segment: the context's own tokens are run
   once and each continuation branches off them (``packing``);
3. token prefixes shared by many contexts (few-shot exemplars, a system prompt, a chat
   template header) are found with a trie (``prefix_tree``); each is run once and its
   key/value cache reused by every context below it.

Segments are packed into rows of about ``ROW_TOKENS`` tokens, so short requests fill a
forward pass without padding, and the output layer runs only where a token is scored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from evalkit.backends.hf.batching import plan_batches
from evalkit.backends.hf.packing import Segment, build_batch, context_segments, pack_rows
from evalkit.backends.hf.prefix_cache import PrefixCache, walk_prefixes
from evalkit.backends.hf.prefix_tree import MIN_SAVED_TOKENS, PrefixNode, build_prefix_tree
from evalkit.backends.hf.scoring import score_pairs
from evalkit.backends.requests import LoglikelihoodResult

if TYPE_CHECKING:
    from evalkit.backends.hf.engine import Engine

log = logging.getLogger(__name__)

#: Target tokens per packed row. Within a row every token's attention scores span the
#: whole row (masked), so wider rows waste attention; narrower ones waste per-call time.
ROW_TOKENS = 256


def score_shared(engine: "Engine", pairs: Sequence[tuple[list[int], list[int]]]) -> Iterator[tuple[int, LoglikelihoodResult]]:
    """Score token-level ``(context, continuation)`` pairs; yields ``(index, result)`` as batches finish.

    Pairs longer than the model's window go to the straightforward path (their context
    is truncated from the left there, so nothing about them is shared).
    """
    too_long = [i for i, (c, t) in enumerate(pairs) if not engine.fast_path_fits(len(c) + len(t) - 1)]
    if too_long:
        for j, res in score_pairs(engine, [pairs[i] for i in too_long]):
            yield too_long[j], res
    skip = set(too_long)
    # Group into contexts, each with its distinct continuations and who asked for them.
    contexts: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}
    for i, (ctx, cont) in enumerate(pairs):
        if i in skip:
            continue
        if not cont:
            yield i, LoglikelihoodResult(0.0, True, 0)
            continue
        contexts.setdefault(tuple(ctx), {}).setdefault(tuple(cont), []).append(i)
    if not contexts:
        return
    ctx_list = list(contexts)
    tree = build_prefix_tree(ctx_list, MIN_SAVED_TOKENS)
    for node, prefix in walk_prefixes(engine, tree, ctx_list):
        yield from _score_node(engine, node, prefix, ctx_list, contexts)


def _score_node(engine: "Engine", node: PrefixNode, prefix: PrefixCache | None,
                ctx_list: list[tuple[int, ...]],
                contexts: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]]) -> Iterator[tuple[int, LoglikelihoodResult]]:
    """Score the contexts attached directly to ``node`` after its prefix."""
    import torch

    if not node.items:
        return
    p = prefix.length if prefix else 0
    segments: list[Segment] = []
    owners: list[list[int]] = []  # per owner id: the request indices it answers
    cont_len: list[int] = []
    for item in node.items:
        ctx = ctx_list[item]
        conts = []
        for cont, reqs in contexts[ctx].items():
            conts.append((list(cont), len(owners)))
            owners.append(reqs)
            cont_len.append(len(cont))
        segments.extend(context_segments(list(ctx[p:]), conts, ROW_TOKENS))
    rows = pack_rows([len(s) for s in segments], ROW_TOKENS)
    # Each row attends to the prefix too: budget rows by prefix + width.
    widths = [p + sum(len(segments[s]) for s in row) for row in rows]
    batches = plan_batches(widths, engine.max_batch_tokens, engine.batch_size)

    def forward(batch_rows: list[int]) -> list[tuple[int, LoglikelihoodResult]]:
        batch = build_batch(segments, [rows[r] for r in batch_rows], p, engine.pad_id, engine.dtype, engine.device)
        cache = prefix.for_batch(engine.model.config, batch.input_ids.shape[0]) if prefix is not None else None
        # Several outputs read the same position (a context's last token predicts every
        # continuation's first token): run the output layer once per position.
        width = batch.input_ids.shape[1]
        uniq, inverse = torch.unique(batch.out_rows * width + batch.out_cols, return_inverse=True)
        logits = engine.forward(batch.input_ids, n_tokens=batch.n_tokens, attention_mask=batch.attention_mask,
                                position_ids=batch.position_ids, cache=cache, use_cache=prefix is not None,
                                head_positions=(uniq // width, uniq % width)).logits
        logits = logits[0].float()
        # log p(target) = logit - logsumexp, without materialising the whole log-softmax.
        tok_lp = logits[inverse, batch.targets] - torch.logsumexp(logits, dim=-1)[inverse]
        hit = logits.argmax(dim=-1)[inverse] == batch.targets
        ids = torch.tensor(batch.owners, device=tok_lp.device)
        n_own = len(owners)
        total = torch.zeros(n_own, dtype=tok_lp.dtype, device=tok_lp.device).index_add_(0, ids, tok_lp)
        misses = torch.zeros(n_own, dtype=torch.long, device=tok_lp.device).index_add_(0, ids, (~hit).long())
        total_l, misses_l = total.cpu().tolist(), misses.cpu().tolist()
        out = []
        for o in dict.fromkeys(batch.owners):
            res = LoglikelihoodResult(float(total_l[o]), misses_l[o] == 0, cont_len[o])
            out.extend((i, res) for i in owners[o])
        return out

    for _, answered in engine.run_batches(batches, forward):
        yield from answered
