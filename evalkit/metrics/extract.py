"""Answer extraction: from a model's generated text to the answer that gets scored.

A task names its extractions in ``extract:`` (``name: {fn: ..., args}``); each generated
text gets every extraction, recorded side by side in the sample JSONL, and metrics say
which one they score (GSM8K keeps lm-eval's strict "#### N" and flexible last-number).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from evalkit.errors import ConfigError

Extractor = Callable[..., "str | None"]
EXTRACTORS: dict[str, Extractor] = {}


def extractor(name: str) -> Callable[[Extractor], Extractor]:
    def wrap(fn: Extractor) -> Extractor:
        EXTRACTORS[name] = fn
        return fn

    return wrap


@extractor("identity")
def identity(text: str) -> str:
    return text


@extractor("strip")
def strip(text: str) -> str:
    return text.strip()


@extractor("first_line")
def first_line(text: str) -> str:
    """The first non-empty line, stripped (short-answer QA)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


@extractor("regex")
def regex(text: str, pattern: str, which: str = "first", group: int | None = None, fallback: str | None = None,
          ignore_case: bool = False) -> str | None:
    """The ``which`` (first/last) match of ``pattern``; its ``group``, or its first non-empty group."""
    matches = list(re.finditer(pattern, text, flags=re.IGNORECASE if ignore_case else 0))
    if not matches:
        return fallback
    m = matches[0] if which == "first" else matches[-1]
    if group is not None:
        return m.group(group)
    groups = [g for g in m.groups() if g]
    return groups[0] if groups else m.group(0)


_NUMBER = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"


@extractor("last_number")
def last_number(text: str) -> str | None:
    """The last number in the text (lm-eval's GSM8K "flexible-extract" pattern)."""
    return regex(text, _NUMBER, which="last")


@extractor("after")
def after(text: str, phrase: str = "the answer is", which: str = "first", ignore_case: bool = True) -> str | None:
    """The rest of the line after ``phrase`` (BBH's "So the answer is (B)."), without the
    final period; the ``which`` (first/last) occurrence; None when the phrase is absent."""
    hits = list(re.finditer(re.escape(phrase), text, flags=re.IGNORECASE if ignore_case else 0))
    if not hits:
        return None
    m = hits[0] if which == "first" else hits[-1]
    rest = text[m.end():].split("\n", 1)[0].strip()
    return rest[:-1].rstrip() if rest.endswith(".") else rest


def apply_extractions(text: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    """Every named extraction of ``text`` (``{"answer": text.strip()}`` when none is set)."""
    if not spec:
        return {"answer": text.strip()}
    out = {}
    for name, cfg in spec.items():
        cfg = dict(cfg)
        fn_name = cfg.pop("fn", "regex")
        if fn_name not in EXTRACTORS:
            raise ConfigError(f"extract.{name}: unknown fn {fn_name!r}; available: {', '.join(sorted(EXTRACTORS))}")
        out[name] = EXTRACTORS[fn_name](text, **cfg)
    return out
