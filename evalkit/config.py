"""Checks on a composed run config, with one-line messages that name the key and the fix.

Hydra already rejects unknown keys and unknown group choices (the CLI turns those into
one line too); this checks values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from evalkit.backends.hf.loading import DTYPES
from evalkit.backends.hf.tokens import BOS_POLICIES
from evalkit.errors import ConfigError
from evalkit.paths import SAMPLES_DIR
from evalkit.tasks.spec import available_tasks, load_task

HUB_VALUES = ("", "hub", "null", "none")
# Keys that do not change any result, left out of the run's identity hash.
NON_IDENTITY_KEYS = ("output_dir", "run_name", "report", "progress", "tracking")


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """Resolve the config to plain Python, turning missing mandatory values into one line."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except MissingMandatoryValue as e:
        key = e.full_key
        hint = " (e.g. model.pretrained=/path/to/checkpoint or a hub id)" if key == "model.pretrained" else ""
        raise ConfigError(f"{key} is required{hint}") from None


def data_root(value: Any) -> Path | None:
    """``data_root`` as a path; None means the Hugging Face hub; ``samples`` the bundled samples."""
    if value is None or str(value).strip().lower() in HUB_VALUES:
        return None
    if str(value) == "samples":
        return SAMPLES_DIR
    path = Path(os.path.expanduser(str(value)))
    if not path.is_dir():
        raise ConfigError(f"data_root={value}: no such folder (give a local mirror laid out like ../shared/data, "
                          "'samples' for the bundled samples, or 'hub')")
    return path.resolve()


def validate(cfg: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for the first invalid value."""
    m = cfg["model"]
    _choice("model.dtype", m.get("dtype"), DTYPES)
    _choice("model.add_bos", str(m.get("add_bos")).lower(), BOS_POLICIES)
    bs = m.get("batch_size")
    if not (bs == "auto" or (isinstance(bs, int) and bs > 0)):
        raise ConfigError(f"model.batch_size must be 'auto' or a positive integer (got {bs!r})")
    for key in ("chat_template", "fewshot_as_multiturn", "trust_remote_code"):
        if not isinstance(m.get(key), bool):
            raise ConfigError(f"model.{key} must be true or false (got {m.get(key)!r})")
    if not isinstance(m.get("prefix_sharing", True), bool):
        raise ConfigError(f"model.prefix_sharing must be true or false (got {m.get('prefix_sharing')!r})")
    dev = str(m.get("device"))
    if not (dev == "cpu" or dev.startswith("cuda") or dev == "mps"):
        raise ConfigError(f"model.device must be cpu, cuda, cuda:N or mps (got {dev!r})")
    for key in ("limit", "seed"):
        v = cfg.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or (key == "limit" and v < 1)):
            raise ConfigError(f"{key} must be {'a positive integer or null' if key == 'limit' else 'an integer'} (got {v!r})")
    suite = cfg["suite"]
    tasks = suite.get("tasks") or {}
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError(f"suite {suite.get('name')!r}: 'tasks' must map task names to overrides")
    known = set(available_tasks())
    for name, overrides in tasks.items():
        if name not in known:
            raise ConfigError(f"suite.tasks.{name}: unknown task; available: {', '.join(sorted(known))}")
        if overrides is not None and not isinstance(overrides, dict):
            raise ConfigError(f"suite.tasks.{name} must be a mapping of overrides (got {overrides!r})")
        load_task(name, overrides or {})  # validates the spec with its overrides
    data_root(cfg.get("data_root"))
    pretrained = str(m.get("pretrained"))
    if pretrained.startswith(("/", "./", "../", "~")) and not Path(pretrained).expanduser().exists():
        raise ConfigError(f"model.pretrained={pretrained}: no such file or folder")


def _choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))} (got {value!r})")
