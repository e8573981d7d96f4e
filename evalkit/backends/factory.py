"""Build a backend from the ``model`` config group."""

from __future__ import annotations

from typing import Any

from evalkit.backends.api import Backend
from evalkit.errors import ConfigError

BACKENDS = ("hf", "openai_compatible")
# Keys of the model config read by the runner rather than the backend.
RUNNER_KEYS = ("backend", "fewshot_as_multiturn")


def build_backend(model_cfg: dict[str, Any]) -> Backend:
    kind = model_cfg.get("backend", "hf")
    if kind not in BACKENDS:
        raise ConfigError(f"model.backend must be one of {', '.join(BACKENDS)} (got {kind!r})")
    kwargs = {k: v for k, v in model_cfg.items() if k not in RUNNER_KEYS}
    if kind == "openai_compatible":
        from evalkit.backends.openai.backend import OpenAICompatibleBackend

        return OpenAICompatibleBackend(**kwargs)
    from evalkit.backends.hf.backend import HFBackend

    return HFBackend(**kwargs)
