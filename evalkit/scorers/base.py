"""The scorer interface and registry.

A scorer maps texts to probabilities in [0, 1] that each text is toxic (offensive,
hateful: what exactly depends on the classifier, which is why its name and version
travel with every score). Scoring is batched, with a progress bar; empty texts score 0
without a call, because an empty continuation says nothing toxic and some services
(Perspective) reject empty comments.
"""

from __future__ import annotations

import abc
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from evalkit.errors import ConfigError, EvalkitError

SCORERS: dict[str, type["Scorer"]] = {}
# Scorer kinds and the module that registers each (imported lazily: they may be heavy).
_MODULES = {
    "profanity_check": "evalkit.scorers.profanity_check",
    "hf_classifier": "evalkit.scorers.hf_classifier",
    "perspective": "evalkit.scorers.perspective",
}


class ScorerError(EvalkitError):
    """A scorer cannot load or cannot answer (bad key, quota, missing model)."""


def scorer(kind: str) -> Callable[[type["Scorer"]], type["Scorer"]]:
    """Register a ``Scorer`` subclass under ``kind`` (the ``scorer.kind`` config value)."""

    def wrap(cls: type[Scorer]) -> type[Scorer]:
        SCORERS[kind] = cls
        cls.kind = kind
        return cls

    return wrap


class Scorer(abc.ABC):
    """Texts -> toxicity probabilities, in batches."""

    kind: str = ""
    batch_size: int = 64

    @abc.abstractmethod
    def score_batch(self, texts: list[str]) -> list[float]:
        """Probabilities for one batch of non-empty texts, in order."""

    @abc.abstractmethod
    def version(self) -> str:
        """What exactly scores: package version, model hash or revision, API attribute."""

    def settings(self) -> dict[str, Any]:
        """Settings that change scores (never secrets); recorded with the version."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Name, version and settings, for results.json."""
        return {"name": self.kind, "version": self.version(), **self.settings()}

    def identity(self) -> dict[str, Any]:
        """What must match for a stored score to be reused (``describe`` minus anything volatile)."""
        return self.describe()

    def score(self, texts: Sequence[str], progress: bool = True) -> list[float]:
        """Score every text; empty or whitespace-only texts get 0.0 without a call."""
        out = [0.0] * len(texts)
        todo = [i for i, t in enumerate(texts) if t and t.strip()]
        with tqdm(total=len(todo), desc=f"toxicity ({self.kind})", unit="text", disable=not progress,
                  dynamic_ncols=True, mininterval=1.0, file=sys.stderr) as bar:
            for start in range(0, len(todo), self.batch_size):
                idx = todo[start : start + self.batch_size]
                probs = self.score_batch([texts[i] for i in idx])
                if len(probs) != len(idx):
                    raise ScorerError(f"scorer {self.kind} returned {len(probs)} scores for {len(idx)} texts")
                for i, p in zip(idx, probs):
                    out[i] = float(p)
                bar.update(len(idx))
        return out


def build_scorer(cfg: dict[str, Any]) -> Scorer:
    """The scorer a ``scorer`` config describes (``kind`` plus that scorer's settings)."""
    cfg = dict(cfg or {})
    kind = cfg.pop("kind", None)
    if kind not in _MODULES and kind not in SCORERS:
        raise ConfigError(f"scorer.kind={kind!r}: unknown toxicity scorer; choose one of {', '.join(sorted(_MODULES))}")
    if kind not in SCORERS:
        importlib.import_module(_MODULES[kind])
    cls = SCORERS[kind]
    try:
        return cls(**cfg)
    except TypeError as e:
        raise ConfigError(f"scorer={kind}: {e} (check the keys under scorer.*)") from None
