"""Log-likelihood on the straightforward path: every pair in full, in length-sorted,
left-padded batches (the reference the prefix-sharing path is tested against).

Left padding with explicit position ids puts every row's continuation at the end of
the batch, so the vocabulary projection runs only on the last ``k`` positions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from evalkit.backends.hf.batching import plan_batches
from evalkit.backends.hf.engine import Engine
from evalkit.backends.requests import LoglikelihoodResult

Pair = tuple[list[int], list[int]]


def score_pairs(engine: Engine, pairs: list[Pair]) -> Iterator[tuple[int, LoglikelihoodResult]]:
    """Score token-level (context, continuation) pairs; yields ``(index, result)`` per pair."""
    rows = []
    dropped = []  # tokens cut from the left of each pair, reported on its result
    for ctx, cont in pairs:
        whole = (ctx + cont)[-(engine.max_length + 1) :]
        dropped.append(len(ctx) + len(cont) - len(whole))
        rows.append((whole[:-1], whole[len(whole) - len(cont) :]))
    lengths = [len(inp) for inp, _ in rows]
    batches = plan_batches(lengths, engine.max_batch_tokens, engine.batch_size)
    for batch, results in engine.run_batches(batches, lambda b: _forward_ll(engine, [rows[i] for i in b])):
        for i, res in zip(batch, results):
            yield i, dataclasses.replace(res, truncated=dropped[i]) if dropped[i] else res


def _forward_ll(engine: Engine, rows: list[Pair]) -> list[LoglikelihoodResult]:
    import torch

    input_ids, attn, pos = engine.left_pad([inp for inp, _ in rows])
    k = max(len(cont) for _, cont in rows)
    out = engine.forward(input_ids, n_tokens=int(attn.sum()), attention_mask=attn, position_ids=pos, keep_last=k)
    with torch.inference_mode():
        logprobs = torch.log_softmax(out.logits[:, -k:, :].float(), dim=-1)
        results = []
        for b, (_, cont) in enumerate(rows):
            c = len(cont)
            lp = logprobs[b, k - c :, :]
            target = torch.tensor(cont, device=lp.device)
            tok_lp = lp.gather(-1, target[:, None]).squeeze(-1)
            greedy = bool((lp.argmax(-1) == target).all())
            results.append(LoglikelihoodResult(float(tok_lp.sum()), greedy, c))
    return results
