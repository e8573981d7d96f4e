"""MATH answers: extraction from a solution, normalisation, and mathematical equivalence.

Two answers are equivalent when, after normalisation (Hendrycks et al.'s ``strip_string``
rules plus Minerva's unit and ``\\text`` stripping), they are the same string, the same
rational number (``\\frac12`` = ``1/2`` = ``0.5``), or, when both parse as simple
expressions, numerically equal at a few random points (``2x+x^2`` = ``x^2+2x``).
Tuples and intervals compare element by element with the same brackets.

The expression check parses a whitelisted subset of LaTeX with sympy (digits, single
letters, + - * / ^, parentheses, \\frac, \\sqrt, \\pi); anything else falls back to the
string comparison, so model output is never evaluated as code.
"""

from __future__ import annotations

import math
import random
import re
from fractions import Fraction

from evalkit.metrics.extract import extractor
from evalkit.metrics.generation import _refs
from evalkit.metrics.normalize import normalizer
from evalkit.metrics.registry import MetricResult, Record, from_per_sample, metric


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces balanced), or ``\\boxed 5``."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    rest = text[idx:]
    m = re.match(r"\\(?:boxed|fbox)\s*\{", rest)
    if not m:
        m2 = re.match(r"\\boxed (\S+?)(?:\$|\s|$)", rest)
        return m2.group(1) if m2 else None
    depth, start = 0, m.end() - 1
    for i in range(start, len(rest)):
        if rest[i] == "{":
            depth += 1
        elif rest[i] == "}":
            depth -= 1
            if depth == 0:
                return rest[start + 1 : i]
    return None


_FINAL = re.compile(r"final answer is\s*(.*?)(?:\.?\s*I hope it is correct|\n|$)", re.IGNORECASE)
_ANSWER_IS = re.compile(r"answer is[:\s]*(.*?)(?:\.\s|\.$|\n|$)", re.IGNORECASE)


@extractor("math_answer")
def math_answer(text: str) -> str | None:
    """The final answer of a MATH solution: Minerva's "Final Answer: The final answer is X.
    I hope it is correct.", else the last ``\\boxed{}``, else the last "The answer is X"."""
    finals = _FINAL.findall(text)
    if finals and finals[0].strip():
        return finals[0].strip().rstrip(".").strip()
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    answers = [a for a in _ANSWER_IS.findall(text) if a.strip()]
    return answers[-1].strip().rstrip(".") if answers else None


# ----------------------------------------------------------------- normalisation
_UNIT_WORDS = ("square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units",
               "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds",
               "meters", "meals", "edges", "students", "childrentickets", "multiples")


def _fix_fracs(s: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{72}`` -> ``\\frac{1}{72}``."""
    s = re.sub(r"\\frac\s*([^{\s\\])\s*([^{\s\\])", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*([^{\s\\])\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*([^{\s\\])", r"\\frac{\1}{\2}", s)
    return s


def _unwrap(s: str, command: str) -> str:
    """``\\text{abc}`` -> ``abc`` (balanced braces, every occurrence)."""
    key = "\\" + command + "{"
    while key in s:
        i = s.index(key)
        depth, j = 0, i + len(key) - 1
        for j in range(i + len(key) - 1, len(s)):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                break
        if depth:
            break
        s = s[:i] + s[i + len(key) : j] + s[j + 1 :]
    return s


@normalizer("math")
def normalize_math(s: str) -> str:
    """A MATH answer in canonical form (string rules only; see ``math_equal`` for numbers)."""
    s = str(s).strip()
    boxed = last_boxed(s)
    if boxed is not None:
        s = boxed
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    for cmd in ("text", "textbf", "mbox", "mathrm", "mathbf", "boxed"):
        s = _unwrap(s, cmd)
    # "x = 5" -> "5" when the left side is a short name (Hendrycks' rule)
    parts = s.split("=")
    if len(parts) == 2 and len(parts[0].strip()) <= 2:
        s = parts[1]
    for word in _UNIT_WORDS:
        s = re.sub(rf"(?<![\\a-zA-Z]){word}\b", "", s)
    s = s.replace("\\,", "").replace("\\;", "").replace("\\ ", "").replace("~", "")
    s = re.sub(r"(^|[\s{(,])\.(\d)", r"\g<1>0.\2", s)  # ".5" -> "0.5"
    s = _fix_fracs(s)
    s = re.sub(r"\\sqrt\s*([^{\[\s])", r"\\sqrt{\1}", s)
    s = s.replace(" ", "").rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    # "a/b" with integers -> "\frac{a}{b}"
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    return s


# ----------------------------------------------------------------- equivalence
def _rational(s: str) -> Fraction | None:
    """``s`` (normalised) as an exact rational, if it is a plain number or \\frac of integers."""
    neg = s.startswith("-")
    t = s[1:] if neg else s
    m = re.fullmatch(r"\\frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}", t)
    try:
        if m:
            den = Fraction(m.group(2))
            value = Fraction(m.group(1)) / den if den else None
        elif re.fullmatch(r"\d+(?:\.\d+)?|\.\d+", t):
            value = Fraction(t)
        else:
            return None
    except (ValueError, ZeroDivisionError):
        return None
    return None if value is None else (-value if neg else value)


_SAFE = re.compile(r"[0-9a-zA-Z+\-*/^().\s]*")


def _latex_to_sympy(s: str):
    """A sympy expression for simple LaTeX, or None (never evaluates arbitrary text)."""
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    t = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\pi", " pi ")
    for _ in range(5):  # nested fractions and roots, innermost first
        t = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", t)
        t = re.sub(r"\\sqrt\[([^\[\]{}]*)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", t)
        t = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", t)
    t = t.replace("{", "(").replace("}", ")")
    if len(t) > 80 or not _SAFE.fullmatch(t) or re.search(r"\.[a-zA-Z_]", t) or t.count("^") > 3:
        return None
    if re.search(r"\^\s*\(?\s*\d{4,}", t):  # exponent bombs
        return None
    names = set(re.findall(r"[a-zA-Z]+", t))
    if names - {"sqrt", "pi"} and any(len(n) > 1 for n in names - {"sqrt", "pi"}):
        return None  # words, not single-letter variables
    local = {"sqrt": sympy.sqrt, "pi": sympy.pi}
    try:
        return parse_expr(t, local_dict=local,
                          transformations=standard_transformations + (implicit_multiplication_application, convert_xor))
    except Exception:  # noqa: BLE001 - malformed expressions are simply not comparable
        return None


def _numerically_equal(a: str, b: str) -> bool:
    ea, eb = _latex_to_sympy(a), _latex_to_sympy(b)
    if ea is None or eb is None:
        return False
    try:
        symbols = sorted(ea.free_symbols | eb.free_symbols, key=str)
        if ea.free_symbols != eb.free_symbols:
            return False
        rng = random.Random(0)
        for _ in range(3 if symbols else 1):
            point = {x: rng.uniform(0.5, 2.5) for x in symbols}
            va, vb = complex(ea.evalf(subs=point)), complex(eb.evalf(subs=point))
            if not (math.isfinite(abs(va)) and abs(va - vb) <= 1e-6 * max(1.0, abs(va))):
                return False
        return True
    except Exception:  # noqa: BLE001 - non-numeric results are not equal
        return False


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in s:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def math_equal(pred: str | None, ref: str) -> bool:
    """Whether two MATH answers are mathematically the same (see the module doc)."""
    if pred is None:
        return False
    a, b = normalize_math(pred), normalize_math(ref)
    if a == b:
        return True
    if not a or not b:
        return False
    ra, rb = _rational(a), _rational(b)
    if ra is not None and rb is not None:
        return ra == rb
    # tuples / intervals: same brackets, element-wise
    if len(a) > 2 and len(b) > 2 and a[0] in "([" and b[0] in "([" and a[-1] in ")]" and b[-1] in ")]":
        ea, eb = _split_top(a[1:-1]), _split_top(b[1:-1])
        if len(ea) > 1 or len(eb) > 1:
            return (a[0], a[-1]) == (b[0], b[-1]) and len(ea) == len(eb) and all(map(math_equal, ea, eb))
    return _numerically_equal(a, b)


@metric("math_equiv")
def math_equiv(records: list[Record], extract: str = "answer", aggregate: str = "micro") -> MetricResult:
    """The first sample's extracted answer is mathematically equivalent to a reference."""
    values = [float(any(math_equal(r["extracted"][0].get(extract), ref) for ref in _refs(r["target"])))
              for r in records]
    return from_per_sample(records, values, aggregate)
