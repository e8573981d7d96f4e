"""Continuous batching: a fixed number of decoding slots kept full until the queue drains.

Rows wait in a queue, grouped under their shared prompt prefix (``shared_generation``).
Whenever slots are free, the next waiting rows run their own prompt tokens, padded to
one width, in prefill passes after their prefix (computed once per prefix, read in place,
not copied per row; the rows split into passes where padding would cost more than one
more pass, ``batching.first_call``), writing their keys/values straight into the free
slots of a ``SlotCache``; then
one decoding step runs one token for every slot. A row whose own prompt is long
(``OWN_IN_SLOT``) first turns it into a prefix of its own, so the slots stay sized for
short prompts and many rows decode together. A row that stops (EOS or end of turn, a stop string, its
token limit) frees its slot at once, so the batch does not empty out while its longest
row finishes, and nothing but the new row's slot is written.

With ``draft`` > 0 a decoding step also runs tokens guessed by prompt lookup
(``prompt_lookup``) after each row's next token: ``q - 1`` per row at most, ``q`` chosen per
step by a ``DraftPlanner`` (wide when few rows are in flight or guesses keep being right,
one when a full step would pay for guesses that are rarely kept), rows with fewer guesses
padded. The row picks its token from each position's logits in turn, exactly
as it would one step at a time, and goes on to the next position only while its pick is
the token that position was fed; the keys/values of the positions past that are dropped
(their columns masked again and overwritten by the next step). So a step yields one to
``draft + 1`` tokens per row, and the text is the one decoding token by token gives.

Every row picks its tokens exactly as ``generation.generate_batch`` does (same stop
rules, its own seeded generator, one draw per token), so its text does not depend on
which rows shared a step or what was guessed: greedy texts match the batch-at-a-time
path, sampled ones match for the same seed.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from evalkit.backends.hf.batching import first_call
from evalkit.backends.hf.generation import GenerationSpec, new_generator, pick, take_token
from evalkit.backends.hf.prompt_lookup import DraftPlanner, PromptLookup
from evalkit.backends.hf.slot_attention import slot_attention
from evalkit.backends.hf.slot_cache import SlotCache, kv_layout

if TYPE_CHECKING:
    from evalkit.backends.hf.engine import Engine
    from evalkit.backends.hf.prefix_cache import PrefixCache
    from evalkit.backends.hf.tokens import Encoder


#: Attention scores a prefill call may hold per layer (elements: 256 MiB in float32).
PREFILL_SCORES = 1 << 26
#: A row whose own prompt (past its shared prefix) is longer keeps that prompt as a prefix
#: of its own, read in place like a shared one: slots are sized for short prompts, so one
#: long prompt (BBH's 3-shot chains of thought of a task with one item) does not shrink
#: every slot to a few.
OWN_IN_SLOT = 256


def slot_capacity(own: Sequence[int], max_new: Sequence[int], draft: int = 0) -> int:
    """Tokens a slot must hold for rows with ``own`` prompt tokens past their shared prefix
    and ``max_new`` new tokens (a long own prompt leaves only its last token in the slot),
    and ``draft`` guessed tokens past them."""
    return max(o if o <= OWN_IN_SLOT else 1 for o in own) + max(max_new) + 1 + draft


def slot_count(engine: "Engine", capacity: int, n_rows: int, budget: int) -> int:
    """Slots whose caches (``capacity`` tokens each) fit ``budget`` tokens, at most
    ``engine.batch_size`` and ``n_rows``, at least one."""
    slots = max(1, budget // max(1, capacity))
    if engine.batch_size:
        slots = min(slots, engine.batch_size)
    return max(1, min(slots, n_rows))


@dataclass
class _Row:
    """A row holding a slot: its spec index, tokens so far, generator, next input token,
    and (when steps guess tokens) its prompt-lookup index."""

    spec: int
    own_prefix: int = 0  # tokens of the row's own prefix (a long prompt of its own), else 0
    out_ids: list[int] = field(default_factory=list)
    gen: Any = None
    next_tok: int = 0
    lookup: PromptLookup | None = None
    kept: int = 0  # guessed tokens kept, of ...
    tried: int = 0  # ... those run


def generate_continuous(engine: "Engine", enc: "Encoder", specs: Sequence[GenerationSpec],
                        groups: Iterable[tuple["PrefixCache | None", list[int]]],
                        slots: int, capacity: int, prefix_budget: int,
                        draft: int = 0) -> Iterator[tuple[int, tuple[str, int]]]:
    """Decode the rows of ``groups`` (``(prefix cache, spec indices)``, consumed lazily,
    so one prefix is held at a time) through ``slots`` decoding slots of ``capacity``
    tokens (``slot_capacity``, with the same ``draft``); rows with prompts of their own
    (``OWN_IN_SLOT``) hold at most ``prefix_budget`` tokens of them at once; each step
    guesses up to ``draft`` tokens per row. Yields ``(spec index, (text, tokens
    generated))`` as each row finishes."""
    import torch

    from evalkit.backends.hf.prefix_cache import extend_prefix

    cache = SlotCache(slots, capacity)
    planner = DraftPlanner(draft, knee=32.0 if engine.device.type == "cpu" else 512.0)
    heads = engine.model.config.num_attention_heads
    queue: deque[tuple["PrefixCache | None", int]] = deque()
    pending = iter(groups)
    held: dict[int, _Row] = {}  # slot -> its row

    def refill() -> bool:
        """Top the queue up from the next prefix group; False once there is none."""
        while not queue:
            try:
                prefix, members = next(pending)
            except StopIteration:
                return False
            # Longest first: the rows that hold a slot longest start early.
            members = sorted(members, key=lambda j: -(len(specs[j].context_ids) + specs[j].max_new_tokens))
            queue.extend((prefix, j) for j in members)
        return True

    def admit() -> Iterator[tuple[int, tuple[str, int]]]:
        """Fill free slots from the queue (one prefill pass per run of rows sharing a prefix)."""
        while refill():
            free = cache.free_slots()
            if not free:
                return
            prefix, first = queue[0]
            p = prefix.length if prefix is not None else 0
            if len(specs[first].context_ids) - p > OWN_IN_SLOT:
                if held and sum(r.own_prefix for r in held.values()) + len(specs[first].context_ids) > prefix_budget:
                    return  # wait for rows with prompts of their own to finish
                queue.popleft()
                mine = extend_prefix(engine, prefix, specs[first].context_ids[p:-1])
                yield from _prefill(engine, enc, specs, cache, mine, [first], free[:1], held, own_prefix=mine.length,
                                    lookup=draft > 0)
                continue
            widths: list[int] = []
            for pre, j in queue:
                own = len(specs[j].context_ids) - p
                if pre is not prefix or own > OWN_IN_SLOT or len(widths) == len(free):
                    break
                widths.append(own)

            def fits(n: int, w: int) -> bool:
                # One forward budget of own tokens, and the prefill's attention scores
                # (rows x heads x own x (prefix + own)) bounded too.
                return n * w <= engine.max_batch_tokens and heads * w * (p + w) * n <= PREFILL_SCORES

            # Calls split to run the fewest positions, a call's fixed cost counted as the
            # decoding steps' fitted one: padding a long row's call with short rows costs
            # more than a call of its own only once the padding outweighs that.
            chunk = [queue.popleft()[1] for _ in range(first_call(widths, planner.knee, fits))]
            yield from _prefill(engine, enc, specs, cache, prefix, chunk, free[: len(chunk)], held,
                                lookup=draft > 0)

    with torch.inference_mode():
        yield from admit()
        while held:
            live = sorted(held)
            guesses = {s: _guess(held[s], specs, draft) for s in live}
            q = planner.width(cache.n_run, [(planner.chance(n, held[s].kept, held[s].tried), len(g))
                                            for s, (n, g) in guesses.items()])
            pos, mask = cache.step_inputs(q)
            ids = torch.full((cache.n_run, q), engine.pad_id, dtype=torch.long)
            for s in live:
                toks = [held[s].next_tok, *guesses[s][1][: q - 1]]
                ids[s, : len(toks)] = torch.tensor(toks)
            # Padding positions past a row's guesses (and past the window) only fill the
            # step's rectangle: their outputs are never kept.
            pos = pos.clamp(max=engine.max_length - 1)
            t0 = time.perf_counter()
            with slot_attention(engine.model, cache):
                out = engine.forward(ids.to(engine.device), n_tokens=len(live) * q, attention_mask=mask,
                                     position_ids=pos, cache=cache.cache, use_cache=True, keep_last=q)
            logits = out.logits[:, -q:, :].cpu()
            planner.timed(cache.n_run * q, time.perf_counter() - t0)
            kept: dict[int, int] = {}
            for s in live:
                row, (n, guess) = held[s], guesses[s]
                picked = yield from _verify(engine, enc, specs, cache, s, logits[s], ids[s].tolist(), held)
                kept[s] = picked if s in held else 0  # a finished row's slot is free already
                tried = min(len(guess), q - 1)
                right = min(tried, picked - 1)
                row.kept, row.tried = row.kept + right, row.tried + tried
                planner.record(n, right, tried)
            cache.advance(kept)
            yield from admit()
            if not queue and not refill():
                for old, new in cache.compact().items():
                    held[new] = held.pop(old)


def _guess(row: _Row, specs: Sequence[GenerationSpec], draft: int) -> tuple[int, list[int]]:
    """``(n-gram matched, up to draft tokens)`` guessed for ``row`` after its next token, no
    more than it may still generate after that one."""
    if row.lookup is None:
        return 0, []
    return row.lookup.draft(min(draft, specs[row.spec].max_new_tokens - len(row.out_ids) - 1))


def _prefill(engine: "Engine", enc: "Encoder", specs: Sequence[GenerationSpec], cache: SlotCache,
             prefix: "PrefixCache | None", chunk: list[int], slots: list[int], held: dict[int, _Row],
             own_prefix: int = 0, lookup: bool = False) -> Iterator[tuple[int, tuple[str, int]]]:
    """Run ``chunk``'s own prompt tokens after ``prefix`` straight into ``slots`` and pick
    each row's first token."""
    p = prefix.length if prefix is not None else 0
    ids, attn, pos = engine.left_pad([specs[j].context_ids[p:] for j in chunk])
    mask = cache.begin_prefill(slots, attn, [int(x) + 1 for x in pos[:, -1] + p], prefix,
                               layout=kv_layout(engine.model.config), dtype=engine.dtype)
    try:
        with slot_attention(engine.model, cache):
            out = engine.forward(ids, n_tokens=int(attn.sum()), attention_mask=mask, position_ids=pos + p,
                                 cache=cache.cache, use_cache=True, keep_last=1)
    finally:
        cache.end_prefill()
    logits = out.logits[:, -1, :].cpu()
    for b, (j, s) in enumerate(zip(chunk, slots)):
        held[s] = _Row(j, own_prefix=own_prefix, gen=new_generator(specs[j].seed),
                       lookup=PromptLookup(specs[j].context_ids) if lookup else None)
        yield from _take(engine, enc, specs, cache, s, logits[b], held)


def _verify(engine: "Engine", enc: "Encoder", specs: Sequence[GenerationSpec], cache: SlotCache, slot: int,
            logits: Any, fed: list[int], held: dict[int, _Row]) -> Generator[tuple[int, tuple[str, int]], None, int]:
    """Pick the tokens of the row in ``slot`` from a step's ``logits [q, vocab]`` (the
    step fed it ``fed``: its next token, then guesses): each position's pick counts only
    while the previous pick was what that position was fed. Returns how many tokens it
    picked: while the row goes on, also how many of the fed tokens stay in its cache."""
    for j in range(len(fed)):
        alive = yield from _take(engine, enc, specs, cache, slot, logits[j], held)
        if not alive or j + 1 == len(fed) or held[slot].next_tok != fed[j + 1]:
            break
    return j + 1


def _take(engine: "Engine", enc: "Encoder", specs: Sequence[GenerationSpec], cache: SlotCache, slot: int,
          logits: Any, held: dict[int, _Row]) -> Generator[tuple[int, tuple[str, int]], None, bool]:
    """Pick the next token of the row in ``slot``; free the slot if the row is done.
    Returns whether the row goes on."""
    row = held[slot]
    spec = specs[row.spec]
    tok = pick(logits, spec, row.gen)
    done = take_token(enc, engine.eos_ids, spec, row.out_ids, tok)
    if done is None:
        row.next_tok = tok
        if row.lookup is not None:
            row.lookup.append(tok)
        return True
    cache.release(slot)
    del held[slot]
    yield row.spec, done
    return False
