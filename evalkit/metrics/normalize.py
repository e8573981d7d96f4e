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


def get_normalizer(name: str) -> Callable[[str], str]:
    if name not in NORMALIZERS:
        raise ConfigError(f"unknown normalize {name!r}; available: {', '.join(sorted(NORMALIZERS))}")
    return NORMALIZERS[name]
