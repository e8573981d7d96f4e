"""Check a task's scoring settings before any model work: metric, extractor and normaliser
names, and every argument against the function's declared parameters (no function takes
``**kwargs``, so a misspelled argument cannot be dropped silently)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from evalkit.errors import ConfigError

AGGREGATES = ("micro", "macro")


def declared(fn: Callable[..., Any]) -> list[str]:
    """The keyword arguments ``fn`` takes after its first (records or text) parameter."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_scoring(metrics: list[dict[str, Any]], extract: dict[str, Any] | None, aggregate: Any,
                  task_type: str) -> None:
    """Raise a one-line ``ConfigError`` (naming the key) for the first invalid setting."""
    from evalkit.metrics import METRICS
    from evalkit.metrics.extract import EXTRACTORS
    from evalkit.metrics.normalize import NORMALIZERS

    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)} (got {aggregate!r})")
    if extract is not None and not isinstance(extract, dict):
        raise ConfigError("extract must map extraction names to {fn: ..., args}")
    for name, cfg in (extract or {}).items():
        cfg = dict(cfg or {})
        fn = cfg.pop("fn", "regex")
        if fn not in EXTRACTORS:
            raise ConfigError(f"extract.{name}: unknown fn {fn!r}; available: {', '.join(sorted(EXTRACTORS))}")
        _check_args(f"extract.{name} ({fn})", cfg, declared(EXTRACTORS[fn]))
    extractions = set(extract) if extract else {"answer"}
    for i, spec in enumerate(metrics):
        args = dict(spec)
        name = args.pop("name", None)
        where = f"metrics[{i}]"
        if name not in METRICS:
            raise ConfigError(f"{where}: unknown metric {name!r}; available: {', '.join(sorted(METRICS))}")
        args.pop("as", None)
        where = f"{where} ({name})"
        _check_args(where, args, declared(METRICS[name].fn))
        if "aggregate" in args and args["aggregate"] not in AGGREGATES:
            raise ConfigError(f"{where}: aggregate must be one of {', '.join(AGGREGATES)} (got {args['aggregate']!r})")
        if "normalize" in args and args["normalize"] not in NORMALIZERS:
            raise ConfigError(f"{where}: unknown normalize {args['normalize']!r}; "
                              f"available: {', '.join(sorted(NORMALIZERS))}")
        if task_type == "generate" and "extract" in args and args["extract"] not in extractions:
            raise ConfigError(f"{where}: extract {args['extract']!r} is not one of the task's extractions "
                              f"({', '.join(sorted(extractions))})")


def _check_args(where: str, args: dict[str, Any], valid: list[str]) -> None:
    unknown = sorted(set(args) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown argument(s) {', '.join(unknown)}; valid: {', '.join(valid) or 'none'}")
