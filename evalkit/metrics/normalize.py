"""Answer normalisation before comparing a prediction with its reference(s)."""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from evalkit.errors import ConfigError

NORMALIZERS: dict[str, Callable[[str], str]] = {}


def normalizer(name: str):
    def wrap(fn: Callable[[str], str]) -> Callable[[str], str]:
        NORMALIZERS[name] = fn
        return fn

    return wrap


@normalizer("none")
def none(s: str) -> str:
    return s


@normalizer("strip")
def strip(s: str) -> str:
    return s.strip()


@normalizer("lower")
def lower(s: str) -> str:
    return s.strip().lower()


@normalizer("squad")
def squad(s: str) -> str:
    """SQuAD/TriviaQA normalisation: lowercase, drop punctuation and articles, squash spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


_TRIVIAQA_PUNCT = set(string.punctuation + "\u2018\u2019\u00b4`")


@normalizer("triviaqa")
def triviaqa(s: str) -> str:
    """TriviaQA's official normalisation: like SQuAD, but punctuation (and curly quotes,
    underscores) becomes a space instead of vanishing, so "blue-whale" = "blue whale"."""
    s = s.replace("_", " ").lower()
    s = "".join(" " if ch in _TRIVIAQA_PUNCT else ch for ch in s)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


@normalizer("number")
def number(s: str) -> str:
    """A number in canonical form: ``$1,234.50`` -> ``1234.5``; ``72.`` -> ``72``.

    Text that is not a number after removing ``$``, ``,`` and a trailing period is
    returned stripped, so it can still match literally.
    """
    t = s.strip().replace(",", "").replace("$", "").rstrip(".").strip()
    try:
        value = float(t)
    except ValueError:
        return t
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@normalizer("bbh")
def bbh(s: str) -> str:
    """BIG-Bench Hard answers: case-insensitive, without a final period, surrounding quotes
    or markdown; an option ("(B) yes", "B") reduced to its letter in brackets, "(b)"."""
    t = s.strip(" \t\n*'\"`.").lower()
    m = re.match(r"^\(([a-z])\)", t) or re.fullmatch(r"([a-z])", t)
    return f"({m.group(1)})" if m else " ".join(t.split())


def get_normalizer(name: str) -> Callable[[str], str]:
    if name not in NORMALIZERS:
        raise ConfigError(f"unknown normalize {name!r}; available: {', '.join(sorted(NORMALIZERS))}")
    return NORMALIZERS[name]
