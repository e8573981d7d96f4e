"""Jinja2 for task specs: templates for prompt text, expressions for fields and answers.

Fields and answers are *expressions* (``question.choices | map(attribute='text') | list``)
evaluated to Python objects; prompt text is a *template*. Undefined names are errors, so a
typo in a spec or a missing column in a data row fails loudly instead of rendering "".
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from typing import Any

import jinja2

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # prompts are plain text for a model, not HTML
)


def _regex_replace(value: str, pattern: str, repl: str = "") -> str:
    return re.sub(pattern, repl, value)


def _regex_search(value: str, pattern: str, group: int = 1) -> str | None:
    """Group ``group`` of the first match of ``pattern`` (None when it does not match)."""
    m = re.search(pattern, value, flags=re.DOTALL)
    return m.group(group) if m else None


def _literal_eval(value: str):
    """A Python literal written as text (AGIEval's few-shot CSV holds dict reprs)."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"not a Python literal: {value[:60]!r}") from e


def _last_boxed(value: str) -> str:
    """The content of the last ``\\boxed{...}`` (MATH reference solutions); an error if none."""
    from evalkit.metrics.math_equiv import last_boxed  # lazy: tasks must not import metrics eagerly

    boxed = last_boxed(value)
    if boxed is None:
        raise ValueError("no \\boxed{...} answer in the text")
    return boxed


_ENV.filters.update(regex_replace=_regex_replace, regex_search=_regex_search, literal_eval=_literal_eval,
                    last_boxed=_last_boxed)
_ENV.globals.update(len=len, range=range, enumerate=enumerate, zip=zip, str=str, int=int, float=float,
                    sorted=sorted, min=min, max=max, chr=chr, ord=ord)


class TemplateError(ValueError):
    """A template or expression failed on a particular document."""


@lru_cache(maxsize=4096)
def _template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


@lru_cache(maxsize=4096)
def _expression(source: str):
    return _ENV.compile_expression(source, undefined_to_none=False)


def check_syntax(source: str, *, expression: bool) -> None:
    """Raise ``TemplateError`` if ``source`` does not parse."""
    try:
        _expression(source) if expression else _template(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"{e.message} in {source!r}") from e


def render(source: str, variables: dict[str, Any]) -> str:
    """Render a text template."""
    try:
        return _template(source).render(variables)
    except jinja2.UndefinedError as e:
        raise TemplateError(e.message) from e


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    """Evaluate an expression to a Python object."""
    try:
        value = _expression(source)(**variables)
    except jinja2.UndefinedError as e:
        raise TemplateError(e.message) from e
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise TemplateError(f"{type(e).__name__}: {e}") from e
    if isinstance(value, jinja2.Undefined):
        try:
            str(value)
        except jinja2.UndefinedError as e:
            raise TemplateError(e.message) from e
    return value
