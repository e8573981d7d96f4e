"""Locating a continuation in an echoed prompt, greedy checks and the start-up probe (pure functions
over the answer shapes servers return; the servers themselves are exercised in test_openai_backend)."""

from __future__ import annotations

import pytest

from evalkit.backends.openai.client import parse_retry_after
from evalkit.backends.openai.logprobs import LogprobsMissing, check_probe, continuation_span, score_text_prompt


def _choice(tokens, values, tops, text):
    offsets, pos = [], 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t)
    return {"text": text, "logprobs": {"tokens": tokens, "token_logprobs": values, "text_offset": offsets, "top_logprobs": tops}}


def test_continuation_after_a_clean_boundary_sums_its_tokens():
    c = _choice(["Q", ":", " the", " Sun", "."], [None, -1.0, -2.0, -0.5, -0.1],
                [None, {":": -1.0}, {" a": -1.0, " the": -2.0}, {" Sun": -0.5}, {".": -0.1}], "Q: the Sun.")
    s = score_text_prompt(c, "Q:", " the Sun")
    assert (s.logprob, s.n_tokens, s.is_greedy, s.merged) == (-2.5, 2, False, False)


def test_a_token_straddling_the_boundary_is_counted_and_reported():
    # "Answer:" + ":)" tokenised as "Answer", "::", ")": the "::" token holds both sides.
    start, end, merged = continuation_span([0, 6, 8], context_len=7, prompt_len=9)
    assert (start, end, merged) == (1, 3, True)


def test_generated_tokens_after_the_prompt_are_not_scored():
    assert continuation_span([0, 2, 5, 9], context_len=2, prompt_len=9) == (1, 3, False)


def test_a_server_that_ignores_logprobs_is_refused():
    with pytest.raises(LogprobsMissing):
        score_text_prompt({"text": "x", "logprobs": None}, "a", "b")
    assert "no prompt log-probabilities" in check_probe({"text": "1, 2"}, "1, 2")


def test_probe_refuses_log_probs_shifted_by_one_position():
    tokens = ["1", ",", " 2", ",", " 3", ",", " 4", ",", " 5"]
    good = [None] + [-0.1] * 8
    good_tops = [None] + [{t: -0.1} for t in tokens[1:]]
    text = "".join(tokens)
    assert check_probe(_choice(tokens, good, good_tops, text), text) is None
    # Each token scored with the logits that predict the *next* one (llama-cpp-python 0.3 echo).
    shifted_tops = [None] + [{tokens[i + 1] if i + 1 < len(tokens) else "x": -0.1, tokens[i]: -9.0} for i in range(1, 9)]
    assert "shifted" in check_probe(_choice(tokens, [None] + [-9.0] * 8, shifted_tops, text), text)


def test_retry_after_in_seconds_or_as_a_date():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
