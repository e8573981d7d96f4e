"""Tokenisation rules shared by every HF request type.

Two details decide whether log-likelihoods agree with other harnesses:

* the context/continuation boundary: trailing whitespace moves from the context to the
  continuation, the context is encoded on its own, and the continuation's tokens are those
  of ``encode(context + continuation)`` past the context's length. This is lm-eval's rule,
  kept so that per-item predictions agree with it;
* BOS: some families are trained with it on every sequence (Gemma breaks without it),
  others never see it. ``auto`` follows the tokenizer's own default and forces it for
  the Gemma family; ``true``/``false`` override.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.errors import ConfigError

BOS_POLICIES = ("auto", "true", "false")
_BOS_REQUIRED_FAMILIES = ("gemma",)


@dataclass
class Encoder:
    tokenizer: Any
    add_bos: bool

    @classmethod
    def create(cls, tokenizer: Any, model_type: str | None, policy: str | bool) -> "Encoder":
        policy = str(policy).lower()
        if policy not in BOS_POLICIES:
            raise ConfigError(f"model.add_bos must be one of {', '.join(BOS_POLICIES)} (got {policy!r})")
        if policy == "auto":
            family_needs = any(f in (model_type or "") for f in _BOS_REQUIRED_FAMILIES)
            probe = tokenizer("a", add_special_tokens=True)["input_ids"]
            tok_default = bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id
            add = family_needs or tok_default
        else:
            add = policy == "true"
        if add and tokenizer.bos_token_id is None:
            add = False
        return cls(tokenizer, add)

    @property
    def prefix_token_id(self) -> int:
        """Token that stands for an empty context (BOS if the model has one, else EOS)."""
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def encode(self, text: str, *, with_bos: bool = True) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if with_bos and self.add_bos and not self._starts_with_bos(text):
            ids = [self.tokenizer.bos_token_id] + ids
        return ids

    def _starts_with_bos(self, text: str) -> bool:
        # Chat templates often write the BOS token as text; do not add a second one.
        bos = self.tokenizer.bos_token
        return bool(bos) and text.startswith(bos)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of context and continuation, split where the joint encoding splits."""
        n_space = len(context) - len(context.rstrip())
        if n_space:
            continuation = context[-n_space:] + continuation
            context = context[:-n_space]
        if not context:
            # Nothing to condition on: score the continuation after the prefix token.
            return [self.prefix_token_id], self.encode(continuation, with_bos=False)
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        cont = whole[len(ctx) :]
        if not cont:
            # The continuation merged entirely into the context's last token; score its
            # own encoding rather than nothing.
            cont = self.encode(continuation, with_bos=False)
        return ctx, cont

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)
