"""The resume cache: every answered request, keyed by its content hash, in SQLite.

Every answer is its own short transaction (autocommit, WAL, ``synchronous=NORMAL``: a
commit is an append to the log, no fsync), so ``kill -9`` loses nothing already answered
and no write transaction is ever held while the model works on a batch. One process
writes a run folder at a time (``evalkit.runner.lock``); the busy timeout only covers
readers such as ``evalkit report`` on a running folder.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from evalkit.backends.requests import Result, result_from_json, result_to_json


class RequestCache:
    def __init__(self, path: Path, busy_timeout_s: float = 30.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so no statement leaves a transaction open.
        self.db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, kind TEXT, value TEXT)")

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

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (never, between calls: tests check it)."""
        return self.db.in_transaction

    def commit(self) -> None:
        """Nothing to do: every ``put`` is committed on its own (kept for callers)."""

    def close(self) -> None:
        self.db.close()
