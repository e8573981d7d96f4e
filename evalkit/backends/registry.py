"""Backend names -> engine classes, imported only when chosen.

``model.backend`` selects an entry. A new engine is one module with a ``Backend``
subclass plus one line in ``BACKENDS``; its own ``check_config`` validates its keys
and its ``capabilities`` say which tasks it can run, both before any weights load.
"""

from __future__ import annotations

import importlib
from typing import Any

from evalkit.backends.api import Backend
from evalkit.errors import ConfigError

#: name -> "module:Class". Keep entries lazy: importing this module loads no engine.
BACKENDS: dict[str, str] = {
    "hf": "evalkit.backends.hf.backend:HFBackend",
    "openai_compatible": "evalkit.backends.openai.backend:OpenAICompatibleBackend",
}

#: Keys of the model config read by the runner rather than the backend.
RUNNER_KEYS = ("backend", "fewshot_as_multiturn")


def backend_name(model_cfg: dict[str, Any]) -> str:
    """The chosen backend's name, or a one-line ``ConfigError`` listing the choices."""
    name = model_cfg.get("backend", "hf")
    if name not in BACKENDS:
        raise ConfigError(f"model.backend must be one of {', '.join(sorted(BACKENDS))} (got {name!r})")
    return str(name)


def backend_class(model_cfg: dict[str, Any]) -> type[Backend]:
    """The class ``model.backend`` names (imports its module, loads no weights)."""
    module, _, attr = BACKENDS[backend_name(model_cfg)].partition(":")
    return getattr(importlib.import_module(module), attr)


def check_model_config(model_cfg: dict[str, Any]) -> None:
    """Validate the model config with the chosen backend's own check."""
    backend_class(model_cfg).check_config(model_cfg)


def build_backend(model_cfg: dict[str, Any]) -> Backend:
    """Load the model ``model_cfg`` describes."""
    cls = backend_class(model_cfg)
    return cls(**{k: v for k, v in model_cfg.items() if k not in RUNNER_KEYS})
