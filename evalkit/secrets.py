"""Keep secrets out of everything evalkit prints or logs.

Secrets are the values of environment variables: the ones a config names (any key ending
in ``_env``, such as ``scorer.api_key_env``) and the usual key variables of model and
scoring services. ``redact`` replaces each value (at least 6 characters, so a short
value cannot blank out ordinary words) with ``***<VAR>``; ``install`` puts it in front of
every log handler and of the traceback printer, and the CLI passes its one-line errors
through it. Backends that read a key in code call ``register`` with the variable's name.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

# Variables that hold keys whether or not a config names them.
KNOWN_SECRET_ENV = ("PERSPECTIVE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN",
                    "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "GOOGLE_API_KEY", "AZURE_OPENAI_API_KEY",
                    "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")
_MIN_LEN = 6
_names: set[str] = set(KNOWN_SECRET_ENV)


def register(*env_names: str) -> None:
    """Treat the values of these environment variables as secrets from now on."""
    _names.update(n for n in env_names if n)


def register_from_config(cfg: Mapping[str, Any]) -> None:
    """Register every variable a config names under a key ending in ``_env`` (any depth)."""
    register(*_env_keys(cfg))


def _env_keys(node: Any) -> Iterable[str]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            if str(k).endswith("_env") and isinstance(v, str):
                yield v
            else:
                yield from _env_keys(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _env_keys(v)


def secret_values() -> dict[str, str]:
    """Current value -> variable name, longest first (so a key containing another is hidden whole)."""
    pairs = {}
    for name in _names:
        value = os.environ.get(name, "").strip()
        if len(value) >= _MIN_LEN:
            pairs[value] = name
    return dict(sorted(pairs.items(), key=lambda kv: -len(kv[0])))


def redact(text: str) -> str:
    """``text`` with every secret value replaced by ``***<VAR>``."""
    for value, name in secret_values().items():
        if value in text:
            text = text.replace(value, f"***{name}")
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message and redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's problem, not ours
            return True
        clean = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


def install(cfg: Mapping[str, Any] | None = None) -> None:
    """Register ``cfg``'s secret variables and redact every log handler and uncaught traceback.

    Call again after anything (Hydra) replaces the logging handlers; it is idempotent.
    """
    if cfg:
        register_from_config(cfg)
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    for lg in loggers:
        if isinstance(lg, logging.Logger):
            for handler in lg.handlers:
                if _FILTER not in handler.filters:
                    handler.addFilter(_FILTER)
    if sys.excepthook is not _excepthook:
        sys.excepthook = _excepthook


def _excepthook(exc_type, exc, tb) -> None:  # noqa: ANN001 - sys.excepthook's signature
    sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))


def error_line(exc: BaseException) -> str:
    """The CLI's one-line form of an error, redacted."""
    return redact(f"evalkit: error: {exc}")
