"""The resume cache: every answered request, keyed by its content hash, in SQLite.

Answers are committed at least once a second, in WAL mode, so ``kill -9`` loses at most
the last second of work and a rerun of the same command recomputes nothing else.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from evalkit.backends.requests import Result, result_from_json, result_to_json


class RequestCache:
    def __init__(self, path: Path, commit_every_s: float = 1.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, kind TEXT, value TEXT)")
        self.db.commit()
        self.commit_every_s = commit_every_s
        self._last_commit = time.monotonic()
        self._dirty = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, tuple[str, dict]]:
        """Cached answers among ``keys``: key -> (kind, result as JSON dict)."""
        keys = list(keys)
        out: dict[str, tuple[str, dict]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, kind, value FROM answers WHERE key IN ({','.join('?' * len(chunk))})"
            for key, kind, value in self.db.execute(q, chunk):
                out[key] = (kind, json.loads(value))
        return out

    def load(self, keys: Iterable[str]) -> dict[str, Result]:
        return {k: result_from_json(kind, v) for k, (kind, v) in self.get_many(keys).items()}

    def put(self, key: str, kind: str, result: Result) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO answers (key, kind, value) VALUES (?, ?, ?)",
            (key, kind, json.dumps(result_to_json(result))),
        )
        self._dirty += 1
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.commit()

    def commit(self) -> None:
        if self._dirty:
            self.db.commit()
            self._dirty = 0
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.commit()
        self.db.close()
