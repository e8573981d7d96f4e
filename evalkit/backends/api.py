"""The backend interface.

A backend answers a *bulk* list of requests of one type and yields ``(index, result)``
pairs as batches finish, in whatever order suits it (sorted by length, grouped by shared
prefix, ...). Yielding as it goes lets the runner persist each answer immediately (so an
interrupted run resumes where it stopped) and drive a progress bar.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.backends.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)


@dataclass
class BackendStats:
    """Work counters, reported in ``results.json``."""

    forward_tokens: int = 0  # tokens run through the model (prefill + decode)
    generated_tokens: int = 0
    forward_calls: int = 0
    load_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """A language model that answers requests in bulk."""

    stats: BackendStats

    @abc.abstractmethod
    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest]
    ) -> Iterator[tuple[int, LoglikelihoodResult]]:
        """Yield ``(i, result)`` for every request, in any order."""

    @abc.abstractmethod
    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest]
    ) -> Iterator[tuple[int, RollingResult]]:
        """Yield ``(i, result)`` for every request, in any order."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, GenerateResult]]:
        """Yield ``(i, result)`` for every request, in any order."""

    @abc.abstractmethod
    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        """Render a conversation ending in a user turn, followed by the assistant's turn header."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Identify the model exactly (name, weights hash, dtype...), for results.json."""

    def token_count(self, text: str) -> int:
        """Number of tokens in ``text`` (for cost estimates and progress)."""
        return len(text.split())
