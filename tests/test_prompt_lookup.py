"""Guessed tokens (prompt lookup) in continuous batching: same texts, fewer steps.

The unit tests pin the lookup, the step planner and the slot cache's several-token
steps; the model tests decode the same requests with guessing off, with the planner's
own choices, and with every step forced to run every guess, and require the texts (greedy
and sampled) to be identical while guesses really were run and kept.
"""

from __future__ import annotations

import contextlib

import pytest

from evalkit.backends.hf import continuous, shared_generation
from evalkit.backends.hf.prompt_lookup import DraftPlanner, PromptLookup
from evalkit.backends.requests import GenerateRequest


def test_lookup_guesses_what_followed_the_latest_longest_match():
    look = PromptLookup([5, 6, 7, 8, 1, 6, 7, 9, 2, 6, 7])
    # "6 7" ends the row; its latest earlier occurrence was followed by 9 2 6 7.
    assert look.draft(3) == (2, [9, 2, 6])
    look.append(9)  # now "6 7 9" matches three tokens
    assert look.draft(2) == (3, [2, 6])
    assert look.draft(0) == (0, [])
    assert PromptLookup([1, 2, 3]).draft(4) == (0, [])  # 3 never occurred before
    fresh = PromptLookup([4, 4])
    assert fresh.draft(5) == (1, [4])  # a guess stops where the row's tokens end


def test_planner_guesses_when_it_pays():
    plan = DraftPlanner(most=4, knee=32.0)
    sure, unsure = (0.95, 4), (0.2, 4)
    assert plan.width(slots=40, rows=[unsure] * 40) == 1  # guesses would double a full step for little
    assert plan.width(slots=2, rows=[sure] * 2) == 5  # a near-empty step costs its weights anyway
    assert plan.width(slots=2, rows=[(0.95, 0)] * 2) == 1  # nothing guessed, nothing to run
    assert 1 < plan.width(slots=8, rows=[(0.6, 4)] * 8) < 5
    # A row's own record moves its chance away from the shared one.
    plan.record(2, kept=1, tried=10)
    assert plan.chance(2, kept=9, tried=10) > 0.6 and plan.chance(2, kept=0, tried=10) < 0.1


def test_planner_fits_the_step_cost():
    plan = DraftPlanner(most=4, knee=32.0)
    assert plan.knee == 32.0
    for _ in range(3):
        for x in (4, 20, 40, 80, 120):
            plan.timed(x, 0.05 + 0.005 * x)  # a = 50 ms, b = 5 ms: knee 10
    assert 10 <= plan.knee < 14  # pulled a little towards the prior line
    for _ in range(200):
        plan.timed(40, 0.3)  # one width only: the slope is the prior's, the knee stays in range
    assert 8 <= plan.knee <= 128


def test_slot_cache_runs_and_rolls_back_several_tokens_per_slot():
    import torch

    from evalkit.backends.hf.slot_cache import SlotCache

    cache = SlotCache(slots=2, capacity=10)
    kv = [(torch.zeros((1, 1, 2, 2)), torch.zeros((1, 1, 2, 2)))]
    cache.admit([0], kv, torch.ones((1, 2), dtype=torch.long), [2])
    cache.admit([1], kv, torch.tensor([[0, 1]]), [1])
    pos, mask = cache.step_inputs(3)
    assert pos.tolist() == [[2, 3, 4], [1, 2, 3]] and mask.shape == (2, 1, 3, 5)
    seen = (mask[:, 0] == 0).int().tolist()
    assert seen[0] == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]  # each guess sees those before it
    assert seen[1] == [[0, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 1]]  # padding stays hidden
    k, _ = cache.write(0, torch.arange(12.0).view(2, 1, 3, 2), torch.zeros((2, 1, 3, 2)))
    assert k[0, 0, 2:5, 0].tolist() == [0.0, 2.0, 4.0] and k[1, 0, 2:5, 0].tolist() == [6.0, 8.0, 10.0]
    cache.advance({0: 1, 1: 3})  # slot 0 kept its next token only, slot 1 both guesses too
    assert cache.length[:2] == [3, 5] and cache.position[:2] == [3, 4]
    assert (cache.mask[0] == 0).int().tolist()[:6] == [1, 1, 1, 0, 0, 0]  # rejected columns hidden again
    assert (cache.mask[1] == 0).int().tolist()[:6] == [0, 1, 1, 1, 1, 0]


# ------------------------------------------------------------------ the embedded model
REPEAT = "".join(f"Item {k}: the red fox jumps over the lazy dog.\n" for k in range(1, 5))


@contextlib.contextmanager
def guessing(backend, draft: int, forced: bool = False, continuous_batching: bool = True):
    saved = backend.continuous_batching, backend.prefix_sharing, backend.draft_tokens, backend.engine.batch_size
    backend.continuous_batching, backend.prefix_sharing, backend.draft_tokens = continuous_batching, True, draft
    backend.engine.batch_size = 3
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(shared_generation, "MIN_SAVED_TOKENS", 16)
            if forced:  # every step runs every guess, whatever it costs
                mp.setattr(DraftPlanner, "knee", property(lambda self: 1e12))
            yield
    finally:
        (backend.continuous_batching, backend.prefix_sharing, backend.draft_tokens,
         backend.engine.batch_size) = saved


def requests(backend) -> list[GenerateRequest]:
    chat = [{"role": "user", "content": "Repeat after me: one two three, one two three."}]
    return [
        GenerateRequest(REPEAT + "Item 5:", max_new_tokens=24),
        GenerateRequest(REPEAT + "Item 5: the red", stop=("lazy",), max_new_tokens=20),  # stop inside a guess
        GenerateRequest(REPEAT + "Item 5: the", stop=("\n",), max_new_tokens=30),
        GenerateRequest(REPEAT + "Item 6:", max_new_tokens=17, temperature=0.8, n=3, seed=7),
        GenerateRequest(REPEAT + "Item 7:", max_new_tokens=12, temperature=0.7, top_p=0.9, seed=2),
        GenerateRequest(backend.apply_chat_template(chat), max_new_tokens=40),  # ends at the end of its turn
        GenerateRequest("Count: 1, 2, 3, 4, 5, 6,", max_new_tokens=5),  # a limit inside a guess
    ]


@pytest.mark.model
def test_guessed_tokens_give_the_same_texts(backend, monkeypatch):
    reqs = requests(backend)
    with guessing(backend, 0, continuous_batching=False):  # batch at a time, as before continuous batching
        base = dict(backend.generate(reqs))
    runs: list[tuple[int, int, int]] = []  # per step and row: (fed tokens, tokens kept)
    real_verify = continuous._verify

    def recording(engine, enc, specs, cache, slot, logits, fed, held):
        picked = yield from real_verify(engine, enc, specs, cache, slot, logits, fed, held)
        runs.append((len(fed), picked if slot in held else 0))  # tokens kept in the cache
        return picked

    monkeypatch.setattr(continuous, "_verify", recording)
    for draft, forced in ((0, False), (4, False), (4, True), (1, True)):
        runs.clear()
        with guessing(backend, draft, forced):
            new = dict(backend.generate(reqs))
        for i, req in enumerate(reqs):
            assert new[i] == base[i], (draft, forced, req)
        if draft == 0:
            assert runs and all(fed == 1 for fed, _ in runs)
        if forced:
            assert any(fed > 1 for fed, _ in runs)
            assert any(kept > 1 for _, kept in runs)  # guesses were right and kept
            assert any(0 < kept < fed for fed, kept in runs)  # ... and wrong and dropped
    # The fixtures cover what they claim.
    assert "lazy" not in base[1].texts[0] and base[1].n_tokens[0] < 20
    assert base[5].n_tokens[0] < 40 and "<|im_end|>" not in base[5].texts[0]
    assert len(set(base[3].texts)) > 1
