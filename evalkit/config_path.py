"""Where config files come from: evalkit's ``conf/``, then the user's own folders.

A user folder is laid out like ``conf/`` (``suite/mycard.yaml``, ``model/mymodel.yaml``,
``gate/strict.yaml``) and given with ``--config-dir DIR`` or ``EVALKIT_CONFIG_PATH``
(folders separated by ``:``). Both become Hydra search-path entries, so the run, the
pre-checks, ``--help``, ``compare`` and ``report`` all see the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

from evalkit.errors import ConfigError
from evalkit.paths import CONF_DIR

ENV = "EVALKIT_CONFIG_PATH"


def user_config_dirs(extra: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """The user's config folders: ``extra`` (from ``--config-dir``) then ``EVALKIT_CONFIG_PATH``."""
    named = [*extra, *(p for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip())]
    out = []
    for d in named:
        path = Path(os.path.expanduser(d))
        if not path.is_dir():
            src = f"{ENV}={os.environ.get(ENV)}" if d not in extra else f"--config-dir {d}"
            raise ConfigError(f"{src}: no such folder {d!r} (give a folder holding suite/NAME.yaml, model/NAME.yaml, ...)")
        out.append(path.resolve())
    return out


def config_dirs(extra: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """evalkit's ``conf/`` first, then the user's folders."""
    return [CONF_DIR, *user_config_dirs(extra)]


def searchpath_override(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The Hydra override that adds the user's folders (none when there are none)."""
    dirs = user_config_dirs(extra)
    return [f"hydra.searchpath=[{','.join('file://' + str(d) for d in dirs)}]"] if dirs else []
