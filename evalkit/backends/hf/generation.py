"""Batched decoding with a KV cache, per-row stop strings and per-row random generators.

Rows leave the batch (and the cache) as soon as they finish, so a batch costs the sum of
its rows' lengths, not ``rows x longest``. Each sampled row draws from its own seeded
generator, so its text does not depend on which other rows shared its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.backends.hf.prefix_cache import decoding_cache

if TYPE_CHECKING:
    from evalkit.backends.hf.engine import Engine
    from evalkit.backends.hf.prefix_cache import PrefixCache
    from evalkit.backends.hf.tokens import Encoder


@dataclass
class GenerationSpec:
    context_ids: list[int]
    stop: tuple[str, ...]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int


def first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    """Index where the earliest stop string begins in ``text``, or None."""
    hits = [i for s in stops if s and (i := text.find(s)) != -1]
    return min(hits) if hits else None


#: Most likely tokens looked at before a full sort of the vocabulary (topk of 256 of 49k
#: tokens costs 0.1 ms, the sort 3.5 ms). A small model's 0.9 nucleus holds under 256
#: tokens at most steps and under 2,048 at nearly all.
NUCLEUS_HEADS = (256, 2048)
#: How far every cumulative sum in the head must be from ``top_p`` for the head to decide:
#: float rounding of a sum over the whole sorted vocabulary is far smaller.
_NUCLEUS_MARGIN = 1e-5


def pick(logits, spec: GenerationSpec, gen) -> int:
    """The next token: the argmax at temperature 0, else one draw from ``gen`` over the
    tempered distribution, cut to its ``top_p`` nucleus."""
    import torch

    if spec.temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / spec.temperature, dim=-1)
    if spec.top_p < 1.0:
        probs = nucleus(probs, spec.top_p)
    return int(torch.multinomial(probs, 1, generator=gen))


def nucleus(probs, top_p: float):
    """``probs`` with every token zeroed but the most likely ones whose probabilities
    before them sum to under ``top_p``: bit for bit the tensor a full descending sort
    gives, so sampled texts do not change, but from the ``topk`` of a head of the
    vocabulary when the nucleus ends inside it. The head decides only if it keeps a
    prefix of itself, no kept token ties a dropped one (a sort may order ties
    differently) and no sum is within rounding of ``top_p``; otherwise the sort runs."""
    import torch

    for k in NUCLEUS_HEADS:
        if k >= probs.numel():
            break
        head, order = probs.topk(k)
        before = head.cumsum(-1) - head
        keep = before < top_p
        n = int(keep.sum())
        if (n < k and bool(keep[:n].all()) and bool(head[n - 1] > head[n])
                and float((before - top_p).abs().min()) > _NUCLEUS_MARGIN):
            return torch.zeros_like(probs).scatter(0, order[:n], head[:n])
    sorted_p, order = probs.sort(descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p
    return torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])


def new_generator(seed: int) -> Any:
    """The request's own random generator, so its samples do not depend on its batch."""
    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return g


def take_token(enc: "Encoder", eos_ids: set[int], spec: GenerationSpec, out_ids: list[int],
               tok: int) -> tuple[str, int] | None:
    """Append ``tok`` to a row's ``out_ids``; the row's ``(text, tokens generated)`` once it
    is done (EOS, a stop string, or its token limit), else None."""
    eos = tok in eos_ids
    if not eos:
        out_ids.append(tok)
    text = enc.decode(out_ids)
    cut = first_stop(text, spec.stop)
    if cut is not None:
        text = text[:cut]
    if eos or cut is not None or len(out_ids) >= spec.max_new_tokens:
        return text, len(out_ids) + (1 if eos else 0)
    return None


def generate_batch(engine: "Engine", enc: "Encoder", specs: list[GenerationSpec],
                   prefix: "PrefixCache | None" = None) -> list[tuple[str, int]]:
    """Decode every spec; returns ``(text cut at its first stop string, tokens generated)``.

    With ``prefix``, every context starts with its tokens, whose cache is reused: only
    the rest of each context is run (left-padded after the prefix).
    """
    import torch

    model = engine.model
    n = len(specs)
    gens = [new_generator(s.seed) for s in specs]
    out_ids: list[list[int]] = [[] for _ in range(n)]
    result: list[tuple[str, int] | None] = [None] * n
    active = list(range(n))  # row b of the live batch is spec active[b]

    p = prefix.length if prefix is not None else 0
    ids, attn, pos = engine.left_pad([s.context_ids[p:] for s in specs])
    capacity = p + ids.shape[1] + max(s.max_new_tokens for s in specs)
    cache: Any = None  # None: transformers' own cache, which sliding-window layers need
    if prefix is not None:
        cache = prefix.for_decoding(model.config, n, capacity)
        attn = torch.cat([torch.ones((n, p), dtype=attn.dtype, device=attn.device), attn], dim=1)
        pos = pos + p
    elif engine.fast_path_fits(capacity):
        cache = decoding_cache(model.config, capacity)
    step_input = ids
    step_tokens = int(attn.sum()) - n * p  # the first step runs every context's own tokens
    with torch.inference_mode():
        while active:
            out = engine.forward(step_input, n_tokens=step_tokens, attention_mask=attn, position_ids=pos,
                                 cache=cache, use_cache=True, keep_last=1)
            cache = engine.cache_of(out)
            logits = out.logits[:, -1, :].cpu()
            keep_rows, next_tokens = [], []
            for b, r in enumerate(active):
                tok = pick(logits[b], specs[r], gens[r])
                result[r] = take_token(enc, engine.eos_ids, specs[r], out_ids[r], tok)
                if result[r] is None:
                    keep_rows.append(b)
                    next_tokens.append(tok)
            if not keep_rows:
                break
            if len(keep_rows) < len(active):
                idx = torch.tensor(keep_rows, device=attn.device)
                cache.batch_select_indices(idx)
                attn, pos = attn[idx], pos[idx]
                active = [active[b] for b in keep_rows]
            step_input = torch.tensor(next_tokens, device=attn.device)[:, None]
            step_tokens = len(next_tokens)
            attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
    return [r for r in result]  # type: ignore[misc]
