"""Text files that a task's rows refer to (BBH's per-task chain-of-thought prompts).

Locally a path is relative to ``data_root``; from the hub it is a URL (the file lives in
the benchmark's repository, not in the hub dataset), downloaded once into the ``datasets``
cache. Each file is read once per load, however many rows refer to it.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import DataError


def fetch_url(url: str) -> Path:
    """A local copy of ``url`` (cached by ``datasets``); DataError when it cannot be fetched."""
    from datasets.utils.file_utils import cached_path

    try:
        return Path(cached_path(url))
    except Exception as e:  # noqa: BLE001 - network errors come in many types
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"could not fetch {url} ({first}); offline? set data_root to a local mirror") from e


class TextFiles:
    """Reads and caches text files under ``root`` (None: the names are URLs)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._cache: dict[str, str] = {}

    def read(self, name: str) -> str:
        if name not in self._cache:
            path = fetch_url(name) if self.root is None else self.root / name
            if not path.is_file():
                raise DataError(f"{path}: text file is missing (check data_root)")
            self._cache[name] = path.read_text(encoding="utf-8")
        return self._cache[name]
