"""Checks on the ``model`` config of the transformers engine (before any weights load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.backends.hf.loading import DTYPES
from evalkit.backends.hf.tokens import BOS_POLICIES
from evalkit.errors import ConfigError


def check_model_config(m: dict[str, Any]) -> None:
    """Raise a one-line ``ConfigError`` for the first invalid ``model.<key>``."""
    _choice("model.dtype", m.get("dtype"), DTYPES)
    _choice("model.add_bos", str(m.get("add_bos")).lower(), BOS_POLICIES)
    bs = m.get("batch_size")
    if not (bs == "auto" or (isinstance(bs, int) and bs > 0)):
        raise ConfigError(f"model.batch_size must be 'auto' or a positive integer (got {bs!r})")
    for key in ("trust_remote_code", "prefix_sharing", "continuous_batching"):
        if not isinstance(m.get(key, False), bool):
            raise ConfigError(f"model.{key} must be true or false (got {m.get(key)!r})")
    draft = m.get("draft_tokens", 0)
    if not (isinstance(draft, int) and not isinstance(draft, bool) and 0 <= draft <= 16):
        raise ConfigError(f"model.draft_tokens must be an integer from 0 (off) to 16 (got {draft!r})")
    dev = str(m.get("device"))
    if not (dev == "cpu" or dev.startswith("cuda") or dev == "mps"):
        raise ConfigError(f"model.device must be cpu, cuda, cuda:N or mps (got {dev!r})")
    pretrained = str(m.get("pretrained"))
    if pretrained.startswith(("/", "./", "../", "~")) and not Path(pretrained).expanduser().exists():
        raise ConfigError(f"model.pretrained={pretrained}: no such file or folder")


def _choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))} (got {value!r})")
