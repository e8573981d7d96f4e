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
from typing import Any, ClassVar

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


@dataclass(frozen=True)
class Capabilities:
    """What a backend can answer; the runner checks a suite against it before loading weights.

    ``loglikelihood``: scores a continuation (multiple-choice tasks); ``rolling``: scores a
    whole text (perplexity tasks); ``generate``: greedy generation; ``chat``: renders chat
    messages (``model.chat_template=true``); ``sampling``: temperature/top-p/n > 1.
    """

    loglikelihood: bool = True
    rolling: bool = True
    generate: bool = True
    chat: bool = True
    sampling: bool = True

    def missing(self, needs: set[str]) -> list[str]:
        """The names in ``needs`` this backend cannot do, sorted."""
        return sorted(n for n in needs if not getattr(self, n))


class Backend(abc.ABC):
    """A language model that answers requests in bulk.

    A new engine subclasses this, declares ``capabilities`` (everything by default) and,
    if its ``model`` config has keys of its own, checks them in ``check_config``; it is
    then registered with one line in ``evalkit.backends.registry``.
    """

    stats: BackendStats
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    def check_config(cls, model_cfg: dict[str, Any]) -> None:
        """Raise ``ConfigError`` (one line naming the ``model.<key>``) for an invalid setting.

        Called before any weights load. The default accepts everything.
        """

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
