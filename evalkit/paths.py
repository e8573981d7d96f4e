"""Where evalkit's own files live (configs, task specs, samples, reference card values)."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root: evalkit is installed editable from its checkout, like lm-eval.
ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
SAMPLES_DIR = ROOT / "samples"
REPORTS_DIR = ROOT / "reports"


def tasks_dir() -> Path:
    """Folder of task specs; ``EVALKIT_TASKS_DIR`` points elsewhere (e.g. a team's own tasks)."""
    return Path(os.environ.get("EVALKIT_TASKS_DIR", ROOT / "tasks"))


def cache_dir() -> Path:
    """evalkit's cache (materialised models); ``EVALKIT_CACHE`` overrides."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "evalkit"
    return Path(os.environ.get("EVALKIT_CACHE", default))
