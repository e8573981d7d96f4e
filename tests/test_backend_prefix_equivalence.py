"""The prefix-sharing path gives the straightforward path's numbers (embedded model).

Each fixture is answered twice by the same loaded model, once per path, and compared:
log-likelihoods within 1e-4 (or 1e-5 relative: float32 sums over long chat contexts), the same greedy flags, token counts and per-item
predictions, and identical generated texts.
"""

from __future__ import annotations

import contextlib

import pytest

from evalkit.backends.hf import shared_generation, shared_scoring
from evalkit.backends.requests import GenerateRequest, LoglikelihoodRequest

pytestmark = pytest.mark.model

SHOTS = "".join(
    f"Question: {q}\nAnswer: {a}\n\n"
    for q, a in [
        ("Which planet is closest to the Sun?", "Mercury"),
        ("What do bees make?", "honey"),
        ("How many legs does a spider have?", "eight"),
        ("What is the largest ocean on Earth?", "the Pacific Ocean"),
    ]
)
QUESTIONS = {
    "What gives the Earth most of its light?": [" the Sun", " the Moon", " a lamp post", " the stars at night"],
    "Which animal says moo?": [" a cow", " a cat", " A", " a very large dog that barks"],
    "What colour is a clear daytime sky?": [" blue", " green", " red", " blue"],  # a duplicate option
}
# Continuations that merge with the end of their context into one token.
MERGING = [("The quick brown fo", "x jumps"), ("I like straw", "berries"), ("The answer is (", ")")]


@pytest.fixture(autouse=True)
def share_short_prefixes(monkeypatch):
    """The fixtures' prefixes are short; lower the sharing threshold so they are shared."""
    monkeypatch.setattr(shared_scoring, "MIN_SAVED_TOKENS", 16)
    monkeypatch.setattr(shared_generation, "MIN_SAVED_TOKENS", 16)


@contextlib.contextmanager
def path(backend, sharing: bool, add_bos: bool | None = None):
    saved = backend.prefix_sharing, backend.encoder.add_bos
    backend.prefix_sharing = sharing
    if add_bos is not None:
        backend.encoder.add_bos = add_bos
    try:
        yield
    finally:
        backend.prefix_sharing, backend.encoder.add_bos = saved


def both(backend, method, requests, **kw):
    """``{index: result}`` from each path, and the tokens each path ran."""
    out = []
    for sharing in (False, True):
        before = backend.stats.forward_tokens
        with path(backend, sharing, **kw):
            res = dict(getattr(backend, method)(requests))
        out.append((res, backend.stats.forward_tokens - before))
    (slow, slow_tokens), (fast, fast_tokens) = out
    assert sorted(slow) == sorted(fast) == list(range(len(requests)))
    return fast, slow, fast_tokens, slow_tokens


def mc_requests(contexts: list[str], delim: str = " ") -> list[LoglikelihoodRequest]:
    reqs = []
    for ctx, options in zip(contexts, QUESTIONS.values()):
        reqs += [LoglikelihoodRequest(ctx, delim + o.lstrip(" ") if delim != " " else o) for o in options]
    return reqs


def assert_same_scores(fast, slow, requests, per_item: int = 4):
    for i in range(len(requests)):
        assert fast[i].logprob == pytest.approx(slow[i].logprob, rel=1e-5, abs=1e-4), requests[i]
        assert (fast[i].is_greedy, fast[i].n_tokens) == (slow[i].is_greedy, slow[i].n_tokens), requests[i]
    for start in range(0, len(requests) - per_item + 1, per_item):
        idx = range(start, start + per_item)
        assert max(idx, key=lambda i: fast[i].logprob) == max(idx, key=lambda i: slow[i].logprob)


@pytest.mark.parametrize("add_bos", [False, True])
def test_fewshot_multiple_choice_matches_and_computes_the_exemplars_once(backend, add_bos):
    reqs = mc_requests([SHOTS + f"Question: {q}\nAnswer:" for q in QUESTIONS])
    fast, slow, fast_tokens, slow_tokens = both(backend, "loglikelihood", reqs, add_bos=add_bos)
    assert_same_scores(fast, slow, reqs)
    assert fast_tokens * 4 < slow_tokens  # exemplars once, each question once


def test_boundary_merges_empty_contexts_duplicates_and_padded_rows(backend, monkeypatch):
    enc = backend.encoder
    for ctx, cont in MERGING:  # the fixture really covers merging at the boundary
        assert enc.encode(ctx + cont)[: len(enc.encode(ctx))] != enc.encode(ctx)
    reqs = [LoglikelihoodRequest(c, t) for c, t in MERGING]
    reqs += [LoglikelihoodRequest("", " lonely words"), LoglikelihoodRequest("Answer: ", "Paris"),
             LoglikelihoodRequest("Answer: ", "Paris"), LoglikelihoodRequest("Answer:", "")]
    reqs += [LoglikelihoodRequest(f"Question: {q}\nAnswer:", o) for q, opts in QUESTIONS.items() for o in opts]
    # Narrow rows: many rows of unequal width per batch, so rows are left-padded.
    monkeypatch.setattr(shared_scoring, "ROW_TOKENS", 24)
    fast, slow, _, _ = both(backend, "loglikelihood", reqs)
    assert_same_scores(fast, slow, reqs, per_item=len(reqs))
    assert fast[6].n_tokens == 0 and fast[6].logprob == 0.0


def test_chat_template_contexts_match(backend):
    contexts = [
        backend.apply_chat_template([{"role": "user", "content": SHOTS + f"Question: {q}\nAnswer with the option."}])
        for q in QUESTIONS
    ]
    reqs = mc_requests(contexts, delim="")
    fast, slow, fast_tokens, slow_tokens = both(backend, "loglikelihood", reqs)
    assert_same_scores(fast, slow, reqs)
    assert fast_tokens * 4 < slow_tokens


def test_generation_matches_with_shared_prefix_stops_and_samples(backend):
    reqs = [GenerateRequest(SHOTS + f"Question: {q}\nAnswer:", stop=("\n", "Question:"), max_new_tokens=10)
            for q in QUESTIONS]
    reqs.append(GenerateRequest(SHOTS + "Question: Name a fruit.\nAnswer:", max_new_tokens=6, temperature=0.9,
                                n=2, seed=3))
    reqs.append(GenerateRequest(backend.apply_chat_template([{"role": "user", "content": "Say hi."}]),
                                stop=("<|im_end|>",), max_new_tokens=8))
    fast, slow, fast_tokens, slow_tokens = both(backend, "generate", reqs)
    for i in range(len(reqs)):
        assert fast[i] == slow[i], reqs[i]
    assert all("\n" not in fast[i].texts[0] for i in range(3))  # cut at the stop string
    assert fast_tokens < slow_tokens
