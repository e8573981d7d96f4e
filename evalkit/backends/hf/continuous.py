"""Continuous batching: a fixed number of decoding slots kept full until the queue drains.

Rows wait in a queue, grouped under their shared prompt prefix (``shared_generation``).
Whenever slots are free, the next waiting rows run their own prompt tokens in one small
prefill pass starting from their prefix's cache (computed once per prefix), and their
keys/values are written into the free slots of a ``SlotCache``; then one decoding step
runs one token for every slot. A row that stops (EOS or end of turn, a stop string, its
token limit) frees its slot at once, so the batch does not empty out while its longest
row finishes, and nothing but the new row's slot is written.

Every row picks its tokens exactly as ``generation.generate_batch`` does (same stop
rules, its own seeded generator), so its text does not depend on which rows shared a
step: greedy texts match the batch-at-a-time path, sampled ones match for the same seed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from evalkit.backends.hf.generation import GenerationSpec, new_generator, pick, take_token
from evalkit.backends.hf.slot_attention import slot_attention
from evalkit.backends.hf.slot_cache import SlotCache

if TYPE_CHECKING:
    from evalkit.backends.hf.engine import Engine
    from evalkit.backends.hf.prefix_cache import PrefixCache
    from evalkit.backends.hf.tokens import Encoder


def slot_count(engine: "Engine", capacity: int, n_rows: int, budget: int) -> int:
    """Slots whose caches (``capacity`` tokens each) fit ``budget`` tokens, at most
    ``engine.batch_size`` and ``n_rows``, at least one."""
    slots = max(1, budget // max(1, capacity))
    if engine.batch_size:
        slots = min(slots, engine.batch_size)
    return max(1, min(slots, n_rows))


@dataclass
class _Row:
    """A row holding a slot: its spec index, tokens so far, generator, next input token."""

    spec: int
    out_ids: list[int] = field(default_factory=list)
    gen: Any = None
    next_tok: int = 0


def generate_continuous(engine: "Engine", enc: "Encoder", specs: Sequence[GenerationSpec],
                        groups: Iterable[tuple["PrefixCache | None", list[int]]],
                        slots: int, capacity: int) -> Iterator[tuple[int, tuple[str, int]]]:
    """Decode the rows of ``groups`` (``(prefix cache, spec indices)``, consumed lazily,
    so one prefix is held at a time) through ``slots`` decoding slots of ``capacity``
    tokens (more than any row's own prompt plus its token limit); yields ``(spec index,
    (text, tokens generated))`` as each row finishes."""
    import torch

    cache = SlotCache(slots, capacity)
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
            prefix = queue[0][0]
            p = prefix.length if prefix is not None else 0
            chunk: list[int] = []
            width = 0
            while queue and queue[0][0] is prefix and len(chunk) < len(free):
                w = max(width, len(specs[queue[0][1]].context_ids) - p)
                # One forward budget of own tokens; the prefix is expanded per row for the
                # prefill's attention (a temporary copy), so bound that too.
                if chunk and (w * (len(chunk) + 1) > engine.max_batch_tokens
                              or (p + w) * (len(chunk) + 1) > 2 * engine.max_batch_tokens):
                    break
                chunk.append(queue.popleft()[1])
                width = w
            yield from _prefill(engine, enc, specs, cache, prefix, chunk, free[: len(chunk)], held)

    with torch.inference_mode():
        yield from admit()
        while held:
            pos, mask = cache.step_inputs()
            ids = torch.tensor([held[s].next_tok if s in held else engine.pad_id for s in range(cache.n_run)],
                               device=engine.device)[:, None]
            live = sorted(held)
            with slot_attention(engine.model, cache):
                out = engine.forward(ids, n_tokens=len(live), attention_mask=mask, position_ids=pos,
                                     cache=cache.cache, use_cache=True, keep_last=1)
            cache.advance()
            logits = out.logits[:, -1, :].cpu()
            for s in live:
                yield from _take(engine, enc, specs, cache, s, logits[s], held)
            yield from admit()
            if not queue and not refill():
                for old, new in cache.compact().items():
                    held[new] = held.pop(old)


def _prefill(engine: "Engine", enc: "Encoder", specs: Sequence[GenerationSpec], cache: SlotCache,
             prefix: "PrefixCache | None", chunk: list[int], slots: list[int],
             held: dict[int, _Row]) -> Iterator[tuple[int, tuple[str, int]]]:
    """Run ``chunk``'s own prompt tokens after ``prefix``, write them into ``slots`` and
    pick each row's first token."""
    import torch

    from evalkit.backends.hf.prefix_cache import cache_layers

    p = prefix.length if prefix is not None else 0
    n = len(chunk)
    ids, attn, pos = engine.left_pad([specs[j].context_ids[p:] for j in chunk])
    start = prefix.for_batch(engine.model.config, n) if prefix is not None else None
    attn = torch.cat([torch.ones((n, p), dtype=attn.dtype, device=attn.device), attn], dim=1)
    out = engine.forward(ids, n_tokens=int(attn.sum()) - n * p, attention_mask=attn, position_ids=pos + p,
                         cache=start, use_cache=True, keep_last=1)
    # The slots keep the rows' own tokens only; the prefix joins the bank, read once per step.
    own = [(k[:, :, p:], v[:, :, p:]) for k, v in cache_layers(engine.cache_of(out))]
    cache.admit(slots, own, attn[:, p:], [int(x) + 1 for x in pos[:, -1] + p], prefix)
    logits = out.logits[:, -1, :].cpu()
    for b, (j, s) in enumerate(zip(chunk, slots)):
        held[s] = _Row(j, gen=new_generator(specs[j].seed))
        yield from _take(engine, enc, specs, cache, s, logits[b], held)


def _take(engine: "Engine", enc: "Encoder", specs: Sequence[GenerationSpec], cache: SlotCache, slot: int,
          logits: Any, held: dict[int, _Row]) -> Iterator[tuple[int, tuple[str, int]]]:
    """Pick the next token of the row in ``slot``; free the slot if the row is done."""
    row = held[slot]
    spec = specs[row.spec]
    tok = pick(logits, spec, row.gen)
    done = take_token(enc, engine.eos_ids, spec, row.out_ids, tok)
    if done is None:
        row.next_tok = tok
        return
    cache.release(slot)
    del held[slot]
    yield row.spec, done
