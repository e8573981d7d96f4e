"""Continuous batching gives the batch-at-a-time path's texts (embedded model).

The same loaded model answers each request set with ``continuous_batching`` off (the
previous path, ``generation.generate_batch``) and on, with one slot, two slots (so rows
of very different lengths finish at different steps and waiting rows take their slots)
and as many as the budget allows; greedy texts and token counts must be identical, and
sampled rows identical for the same seed whatever the number of slots.
"""

from __future__ import annotations

import contextlib

import pytest

from evalkit.backends.hf import continuous, shared_generation
from evalkit.backends.requests import GenerateRequest

pytestmark = pytest.mark.model

SHOTS = "".join(
    f"Question: {q}\nAnswer: {a}\n\n"
    for q, a in [
        ("Which planet is closest to the Sun?", "Mercury"),
        ("What do bees make?", "honey"),
        ("How many legs does a spider have?", "eight"),
    ]
)
QUESTIONS = ["What gives the Earth light?", "Which animal says moo?", "Write a story about a dragon.",
             "What is 2+2?", "Name three colours."]


@pytest.fixture(autouse=True)
def share_short_prefixes(monkeypatch):
    """The fixtures' prefixes are short; lower the sharing threshold so they are shared."""
    monkeypatch.setattr(shared_generation, "MIN_SAVED_TOKENS", 16)


@contextlib.contextmanager
def setting(backend, cb: bool, slots: int | None = None):
    saved = backend.continuous_batching, backend.prefix_sharing, backend.engine.batch_size
    backend.continuous_batching, backend.prefix_sharing, backend.engine.batch_size = cb, True, slots
    try:
        yield
    finally:
        backend.continuous_batching, backend.prefix_sharing, backend.engine.batch_size = saved


def answers(backend, reqs, cb: bool, slots: int | None = None) -> dict:
    with setting(backend, cb, slots):
        return dict(backend.generate(reqs))


def requests(backend) -> list[GenerateRequest]:
    # Very different limits (3..19 new tokens) so rows finish at different steps.
    reqs = [GenerateRequest(SHOTS + f"Question: {q}\nAnswer:", stop=("Question:",), max_new_tokens=3 + 4 * k)
            for k, q in enumerate(QUESTIONS)]
    reqs.append(GenerateRequest(SHOTS + "Question: Name a fruit.\nAnswer:", max_new_tokens=6, temperature=0.9,
                                n=3, seed=3))
    chat = [{"role": "user", "content": "What is the capital of France? One word."}]
    reqs.append(GenerateRequest(backend.apply_chat_template(chat), max_new_tokens=16))
    reqs.append(GenerateRequest("Once upon a time", max_new_tokens=8, temperature=0.7, top_p=0.9, seed=5))
    return reqs


def test_same_texts_as_batch_at_a_time_for_any_slot_count(backend, monkeypatch):
    reqs = requests(backend)
    admitted: list[int] = []
    real_prefill = continuous._prefill

    def counting_prefill(engine, enc, specs, cache, prefix, chunk, slots, held, **kw):
        admitted.append(len(chunk))
        return real_prefill(engine, enc, specs, cache, prefix, chunk, slots, held, **kw)

    monkeypatch.setattr(continuous, "_prefill", counting_prefill)
    old = answers(backend, reqs, cb=False)
    for slots in (1, 3):
        admitted.clear()
        new = answers(backend, reqs, cb=True, slots=slots)
        for i, req in enumerate(reqs):
            assert new[i] == old[i], (slots, req)
        if slots:  # more rows than slots: finished rows' slots were refilled, one prefill per admission
            assert sum(admitted) == sum(r.n for r in reqs) and max(admitted) <= slots
    # The fixtures cover what they claim: a stop string cuts a text, EOS (end of turn)
    # ends the chat row early, the n samples differ from each other.
    assert any(old[i].n_tokens[0] < reqs[i].max_new_tokens for i in range(5))
    assert old[6].n_tokens[0] < reqs[6].max_new_tokens and "<|im_end|>" not in old[6].texts[0]
    assert len(set(old[5].texts)) > 1


def test_stop_string_inside_a_token(backend):
    reqs = [GenerateRequest(SHOTS + f"Question: {q}\nAnswer:", max_new_tokens=10) for q in QUESTIONS[:3]]
    free = answers(backend, reqs, cb=False)
    tok = backend.tokenizer
    # A stop string that starts in the middle of a generated token of each row.
    stops = []
    for i in range(len(reqs)):
        ids = tok(free[i].texts[0], add_special_tokens=False)["input_ids"]
        pieces = [tok.decode([t]) for t in ids]
        k = next(k for k, p in enumerate(pieces) if len(p.strip()) >= 3)
        start = len("".join(pieces[:k])) + len(pieces[k]) - len(pieces[k].lstrip()) + 1
        stops.append(free[i].texts[0][start : start + 2])
    cut = [GenerateRequest(r.context, stop=(s,), max_new_tokens=10) for r, s in zip(reqs, stops)]
    old = answers(backend, cut, cb=False)
    new = answers(backend, cut, cb=True)
    for i in range(len(cut)):
        assert new[i] == old[i]
        assert stops[i] not in new[i].texts[0] and free[i].texts[0].startswith(new[i].texts[0])
        assert len(new[i].texts[0]) < len(free[i].texts[0])


def test_rows_of_different_prefixes_in_flight_read_only_their_own(backend, monkeypatch):
    """Three few-shot prefixes (as BBH's tasks) decoding together: each slot's attention
    covers only its own prefix (``SlotCache.segments``), with the same texts as before."""
    from evalkit.backends.hf.slot_cache import SlotCache

    others = [
        "".join(f"Q: {q}\nA: {a}\n\n" for q, a in [("Is ice cold?", "Yes, ice is cold."), ("Is fire wet?", "No.")]),
        "Translate to French.\n\nEnglish: cat\nFrench: chat\n\nEnglish: dog\nFrench: chien\n\n",
    ]
    reqs = [GenerateRequest(SHOTS + f"Question: {q}\nAnswer:", stop=("Question:",), max_new_tokens=4 + 5 * k)
            for k, q in enumerate(QUESTIONS[:3])]
    reqs += [GenerateRequest(others[0] + f"Q: {q}\nA:", stop=("Q:",), max_new_tokens=12 - 3 * k)
             for k, q in enumerate(["Is the sea salty?", "Do fish fly?"])]
    reqs += [GenerateRequest(others[1] + f"English: {w}\nFrench:", max_new_tokens=5 + 4 * k)
             for k, w in enumerate(["house", "water"])]
    widths: list[tuple[int, int, int]] = []  # (prefixes read by a step, its bank columns, the bank's length)
    real = SlotCache.step_inputs

    def recording(self, q=1):
        pos, mask = real(self, q)
        widths.append((len(self.segments) if self.segments is not None else 1, mask.shape[-1] - self.width,
                       self.bank_len))
        return pos, mask

    monkeypatch.setattr(SlotCache, "step_inputs", recording)
    old = answers(backend, reqs, cb=False)
    for slots in (3, None):
        widths.clear()
        new = answers(backend, reqs, cb=True, slots=slots)
        for i in range(len(reqs)):
            assert new[i] == old[i], (slots, reqs[i])
        # Steps really decoded rows of several prefixes at once, over fewer columns than the bank.
        assert any(n >= 2 and cols < bank for n, cols, bank in widths), widths


def test_long_prompts_kept_as_prefixes_of_their_own(backend, monkeypatch):
    """Rows whose own prompt is long (``OWN_IN_SLOT``, lowered here so the fixtures' are)
    keep it as a prefix of their own, decoded next to short rows and shared prefixes:
    same texts as batch at a time, and the slots are sized for the short prompts only."""
    monkeypatch.setattr(continuous, "OWN_IN_SLOT", 6)
    reqs = requests(backend)
    reqs.append(GenerateRequest("A long prompt of its own, shared with no other request: tell me about rivers.",
                                max_new_tokens=9))
    private: list[int] = []
    capacities: list[int] = []
    real_prefill, real_cache = continuous._prefill, continuous.SlotCache

    def recording_prefill(engine, enc, specs, cache, prefix, chunk, slots, held, own_prefix=0, **kw):
        if own_prefix:
            private.append(own_prefix)
            assert prefix.length == own_prefix and all(len(specs[j].context_ids) == own_prefix + 1 for j in chunk)
        return real_prefill(engine, enc, specs, cache, prefix, chunk, slots, held, own_prefix, **kw)

    def recording_cache(slots, capacity):
        capacities.append(capacity)
        return real_cache(slots, capacity)

    monkeypatch.setattr(continuous, "_prefill", recording_prefill)
    monkeypatch.setattr(continuous, "SlotCache", recording_cache)
    old = answers(backend, reqs, cb=False)
    for slots in (2, None):
        private.clear()
        new = answers(backend, reqs, cb=True, slots=slots)
        for i in range(len(reqs)):
            assert new[i] == old[i], (slots, reqs[i])
        assert len(private) >= 2  # the chat row and the long one at least
    assert capacities and max(capacities) <= 6 + max(r.max_new_tokens for r in reqs) + 1 + backend.draft_tokens
    # With room for one long prompt at a time, the others wait for it; all still finish alike.
    from evalkit.backends.hf import backend as hf_backend

    held_prompts: list[int] = []
    real_generate = continuous.generate_continuous

    def tight(engine, enc, specs, groups, slots, capacity, prefix_budget, draft=0):
        for j, out in real_generate(engine, enc, specs, groups, slots, capacity, 1, draft):
            held_prompts.append(j)
            yield j, out

    monkeypatch.setattr(hf_backend, "generate_continuous", tight)
    new = answers(backend, reqs, cb=True)
    assert held_prompts and all(new[i] == old[i] for i in range(len(reqs)))


def test_slot_cache_writes_only_the_admitted_slot():
    import torch

    from evalkit.backends.hf.slot_cache import SlotCache

    cache = SlotCache(slots=3, capacity=8)
    kv = lambda n, fill: [(torch.full((1, 2, n, 4), fill), torch.full((1, 2, n, 4), -fill))]  # noqa: E731
    one = torch.ones((1, 3), dtype=torch.long)
    cache.admit([0], kv(3, 1.0), one, [3])
    cache.admit([1], kv(3, 2.0), one, [3])
    buffers = [t.data_ptr() for t in (cache.keys[0], cache.values[0], cache.mask)]
    cache.release(0)
    assert cache.free_slots() == [0, 2] and cache.n_run == 2
    cache.admit([0], kv(2, 5.0), torch.tensor([[0, 1]]), [1])
    assert [t.data_ptr() for t in (cache.keys[0], cache.values[0], cache.mask)] == buffers
    assert bool((cache.keys[0][1, :, :3] == 2.0).all()) and bool((cache.keys[0][0, :, :2] == 5.0).all())
    pos, mask = cache.step_inputs()
    assert pos.flatten().tolist() == [1, 3] and mask.shape == (2, 1, 1, 4)
    assert (mask[0, 0, 0] == 0).tolist() == [False, True, True, False]  # padding masked, new column open
    k, v = cache.write(0, torch.full((2, 2, 1, 4), 9.0), torch.full((2, 2, 1, 4), 9.0))
    assert k.shape == (2, 2, 4, 4) and bool((k[0, :, 2] == 9).all()) and bool((k[1, :, 3] == 9).all())
    cache.advance()
    assert cache.length[:2] == [3, 4] and cache.position[:2] == [2, 4]


def test_slot_cache_moves_the_last_live_slots_into_the_holes():
    import torch

    from evalkit.backends.hf.slot_cache import SlotCache

    cache = SlotCache(slots=5, capacity=8)
    for s in range(4):
        cache.admit([s], [(torch.full((1, 1, 2, 2), float(s)), torch.full((1, 1, 2, 2), float(s)))],
                    torch.ones((1, 2), dtype=torch.long), [10 + s])
    assert cache.compact() == {} and cache.n_run == 4  # no hole
    cache.release(1)
    cache.release(0)
    assert cache.compact() == {3: 0, 2: 1}  # one slot's buffers copied per hole
    assert cache.n_run == 2 and cache.live == [True, True, False, False, False]
    assert cache.position[:2] == [13, 12] and cache.free_slots() == [2, 3, 4]
    assert bool((cache.keys[0][0, :, :2] == 3.0).all()) and bool((cache.keys[0][1, :, :2] == 2.0).all())
    assert (cache.mask[3] == 0).tolist() == [True] + [False] * 8  # the old slots are free again
    cache.release(0)
    assert cache.compact() == {1: 0} and cache.n_run == 1 and cache.position[0] == 12
