"""Every cache file of a run folder, read as one.

A single process writes ``requests.sqlite``; each worker of a sharded or Ray run writes
its own ``cache/<worker>.sqlite`` (SQLite in WAL mode, see ``RequestCache``), so workers
never contend for one file. Answers are keyed by request content, never by worker or
shard, so a resume with any number of workers reads every file and recomputes nothing
already answered.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from evalkit.backends.requests import Result, result_from_json
from evalkit.rundir import CACHE

CACHE_DIR = "cache"


def worker_cache_path(run_dir: Path, worker: str) -> Path:
    """The cache file one worker appends to."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", worker):
        raise ValueError(f"worker id {worker!r} must be letters, digits, '.', '_' or '-'")
    return run_dir / CACHE_DIR / f"{worker}.sqlite"


def cache_files(run_dir: Path) -> list[Path]:
    """The run folder's cache files: the single-process one first, then the workers' by name."""
    single = [run_dir / CACHE] if (run_dir / CACHE).exists() else []
    return single + sorted((run_dir / CACHE_DIR).glob("*.sqlite"))


class CacheSet:
    """Read-side view over every cache file of a run folder (same lookups as ``RequestCache``)."""

    def __init__(self, run_dir: Path) -> None:
        self.paths = cache_files(run_dir)

    def get_many(self, keys: Iterable[str]) -> dict[str, tuple[str, dict]]:
        """Cached answers among ``keys``: key -> (kind, result as JSON dict)."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, tuple[str, dict]] = {}
        for path in self.paths:
            todo = [k for k in wanted if k not in out]
            if not todo:
                break
            db = sqlite3.connect(path, timeout=30)
            try:
                for i in range(0, len(todo), 500):
                    chunk = todo[i : i + 500]
                    q = f"SELECT key, kind, value FROM answers WHERE key IN ({','.join('?' * len(chunk))})"
                    for key, kind, value in db.execute(q, chunk):
                        out[key] = (kind, json.loads(value))
            except sqlite3.OperationalError as e:
                if "no such table" not in str(e):  # a worker that died before creating its table
                    raise
            finally:
                db.close()
        return out

    def load(self, keys: Iterable[str]) -> dict[str, Result]:
        return {k: result_from_json(kind, v) for k, (kind, v) in self.get_many(keys).items()}

    def close(self) -> None:
        """Nothing held open between lookups (kept for the ``RequestCache`` interface)."""
