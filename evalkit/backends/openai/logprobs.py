"""Log-likelihoods from ``/v1/completions`` answers with ``echo=true`` and ``logprobs``.

The server echoes the prompt's tokens with, for each, its log-probability given the
tokens before it (the first has none), its character offset in the echoed text, and
the top alternatives. Scoring a continuation means summing the log-probabilities of
its tokens, so the only question is where the continuation begins:

* token-id prompts (a tokenizer is configured): context and continuation were
  tokenised the way the in-process backend does it, so the continuation is exactly
  the last ``n_cont`` prompt tokens;
* text prompts: the continuation starts at the first token whose offset is at or past
  the end of the context. When the server's tokenizer merges the context's last
  characters with the continuation's first into one token, that token straddles the
  boundary; it is counted in the continuation (it carries the continuation's first
  characters) and the merge is reported, since P(continuation | context) is then only
  approximated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class LogprobsMissing(ValueError):
    """The answer carries no prompt log-probabilities (the server ignored ``echo``/``logprobs``)."""


@dataclass(frozen=True)
class Scored:
    logprob: float
    is_greedy: bool
    n_tokens: int
    merged: bool = False  # a token straddled the context/continuation boundary


def _logprobs(choice: dict[str, Any]) -> dict[str, Any]:
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or not lp.get("token_logprobs"):
        raise LogprobsMissing("the server returned no prompt log-probabilities")
    return lp


def _score(lp: dict[str, Any], start: int, end: int, merged: bool = False) -> Scored:
    """Sum of token log-probabilities over positions ``[start, end)``."""
    values = lp["token_logprobs"]
    tops = lp.get("top_logprobs") or []
    if start < 1 or end > len(values) or start >= end:
        raise LogprobsMissing(f"cannot score tokens {start}..{end} of {len(values)} returned")
    total = 0.0
    greedy = True
    for i in range(start, end):
        v = values[i]
        if v is None or not math.isfinite(float(v)):
            raise LogprobsMissing(f"token {i} has no log-probability ({v!r})")
        total += float(v)
        top = tops[i] if i < len(tops) else None
        # Greedy when no alternative beats the actual token (compared by value, since
        # token strings of partial UTF-8 bytes are spelled differently by each server).
        if not top or max(float(x) for x in top.values()) > float(v) + 1e-6:
            greedy = False
    return Scored(total, greedy, end - start, merged)


def score_token_prompt(choice: dict[str, Any], n_prompt: int, n_cont: int) -> Scored:
    """Score the last ``n_cont`` of ``n_prompt`` prompt tokens (token-id prompts)."""
    lp = _logprobs(choice)
    if len(lp["token_logprobs"]) < n_prompt:
        raise LogprobsMissing(f"{len(lp['token_logprobs'])} tokens echoed for a prompt of {n_prompt}")
    return _score(lp, n_prompt - n_cont, n_prompt)


def continuation_span(offsets: list[int], context_len: int, prompt_len: int) -> tuple[int, int, bool]:
    """``(start, end, merged)``: the prompt tokens that cover characters ``[context_len, prompt_len)``.

    ``offsets`` are the tokens' character offsets in the echoed text; tokens at or past
    ``prompt_len`` were generated, not echoed.
    """
    end = next((i for i, o in enumerate(offsets) if o >= prompt_len), len(offsets))
    start = next((i for i, o in enumerate(offsets[:end]) if o >= context_len), end)
    merged = False
    # The token before ``start`` straddles the boundary when it ends past the context's end.
    token_end = offsets[start] if start < len(offsets) else prompt_len
    if start > 0 and offsets[start - 1] < context_len < min(token_end, prompt_len):
        start, merged = start - 1, True
    return start, end, merged


def score_text_prompt(choice: dict[str, Any], context: str, continuation: str) -> Scored:
    """Score ``continuation`` after ``context`` from an echo of the text ``context + continuation``."""
    lp = _logprobs(choice)
    offsets = lp.get("text_offset")
    if not offsets or len(offsets) != len(lp["token_logprobs"]):
        raise LogprobsMissing("the server returned no token offsets (text_offset)")
    start, end, merged = continuation_span([int(o) for o in offsets], len(context), len(context) + len(continuation))
    if start == 0:
        # The very first token has no log-probability: nothing before it to condition on.
        raise LogprobsMissing("the continuation starts at the first token; configure model.tokenizer "
                              "so an empty context is scored after the prefix token")
    return _score(lp, start, end, merged)


def score_rolling(choice: dict[str, Any], n_prompt: int, n_scored: int) -> Scored:
    """Score the last ``n_scored`` of ``n_prompt`` echoed tokens (one rolling window)."""
    return score_token_prompt(choice, n_prompt, n_scored)


def check_probe(choice: dict[str, Any], prompt: str) -> str | None:
    """None when an echo of ``prompt`` carries usable prompt log-probabilities, else why not."""
    try:
        lp = _logprobs(choice)
    except LogprobsMissing as e:
        return str(e)
    values = [v for v in lp["token_logprobs"][1:] if v is not None]
    if len(values) < 2:
        return "the server echoed the prompt without log-probabilities"
    if not lp.get("text_offset"):
        return "the server returned no token offsets (text_offset)"
    text = "".join(lp.get("tokens") or [])
    if prompt[:8] not in (choice.get("text") or text):
        return "the server did not echo the prompt"
    if all(abs(float(v)) < 1e-9 for v in values):
        return "every prompt log-probability is 0 (the server does not compute them)"
    # The probe text continues itself predictably: a server that scores each token with
    # the logits of the right position ranks most of them first. One that is off by a
    # position (llama-cpp-python 0.3 with echo) or scores at chance ranks almost none.
    tops = (lp.get("top_logprobs") or [])[4:]
    vals = lp["token_logprobs"][4:]
    ranked = [t for t in tops if t]
    if ranked:
        first = sum(1 for v, t in zip(vals, tops) if t and v is not None and float(v) >= max(t.values()) - 1e-6)
        if first < len(ranked) / 2:
            return (f"only {first} of {len(ranked)} tokens of a predictable text are ranked first: "
                    "prompt log-probs look shifted by a position or at chance")
    return None
