"""The three request types a backend answers, and their results.

Requests are frozen and hashable so the runner can deduplicate them across a whole
suite and key its resume cache on them. Contexts are plain strings: chat templates are
applied before a request is made (see ``evalkit.runner.prompting``), so identical
prompts are identical requests whatever task produced them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Union


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """log P(continuation | context), summed over the continuation's tokens."""

    context: str
    continuation: str
    kind: ClassVar[str] = "loglikelihood"


@dataclass(frozen=True)
class RollingRequest:
    """log P(text) of a whole text, with windows of the model's length if it is longer."""

    text: str
    kind: ClassVar[str] = "rolling"


@dataclass(frozen=True)
class GenerateRequest:
    """Continue ``context`` until a stop string or ``max_new_tokens``.

    ``temperature == 0`` means greedy (then ``n`` must be 1). Sampled requests draw from a
    generator seeded by ``seed`` and the request itself, so a resumed run samples the
    same texts as an uninterrupted one regardless of how requests were batched.
    """

    context: str
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    kind: ClassVar[str] = "generate"

    def __post_init__(self) -> None:
        if self.temperature == 0 and self.n != 1:
            raise ValueError("greedy generation (temperature=0) gives one sample; set n=1")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")


Request = Union[LoglikelihoodRequest, RollingRequest, GenerateRequest]


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float
    is_greedy: bool
    n_tokens: int
    truncated: int = 0  # context tokens dropped from the left to fit the model's window


@dataclass(frozen=True)
class RollingResult:
    logprob: float
    n_tokens: int


@dataclass(frozen=True)
class GenerateResult:
    texts: tuple[str, ...]
    n_tokens: tuple[int, ...]
    truncated: int = 0  # context tokens dropped from the left to fit the model's window


Result = Union[LoglikelihoodResult, RollingResult, GenerateResult]

_RESULT_TYPES: dict[str, type] = {
    "loglikelihood": LoglikelihoodResult,
    "rolling": RollingResult,
    "generate": GenerateResult,
}


def request_key(req: Request) -> str:
    """A stable content hash of a request (used as the resume-cache key)."""
    payload = json.dumps({"kind": req.kind, **asdict(req)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def result_to_json(res: Result) -> dict[str, Any]:
    return asdict(res)


def result_from_json(kind: str, data: dict[str, Any]) -> Result:
    cls = _RESULT_TYPES[kind]
    if cls is GenerateResult:
        return GenerateResult(texts=tuple(data["texts"]), n_tokens=tuple(data["n_tokens"]),
                              truncated=int(data.get("truncated", 0)))
    return cls(**data)
