"""The toxicity judge: score every generated continuation with the configured scorer.

The scorer comes from the run config (``scorer=...``), not the task, so one setting
switches every toxicity row of a suite to Perspective or a hub classifier. Scores are
written to each record as ``toxicity`` (one per output) and kept in the run folder's
``toxicity_scores.sqlite`` keyed by scorer identity and text: a resumed or rescored run
never pays twice for a Perspective call.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evalkit.errors import ConfigError, EvalkitError
from evalkit.judges import judge
from evalkit.scorers import Scorer, build_scorer

DEFAULT_SCORER = {"kind": "profanity_check"}
CACHE_FILE = "toxicity_scores.sqlite"
_BUILT: dict[str, Scorer] = {}


def scorer_for(run_cfg: dict[str, Any]) -> Scorer:
    """The run's scorer, built once per process and config."""
    cfg = run_cfg.get("scorer") or DEFAULT_SCORER
    key = json.dumps(cfg, sort_keys=True, default=str)
    if key not in _BUILT:
        try:
            _BUILT[key] = build_scorer(cfg)
        except EvalkitError as e:
            raise ConfigError(f"toxicity scorer cannot load: {e}") from None
    return _BUILT[key]


def _preflight(args: dict[str, Any], run_cfg: dict[str, Any]) -> None:
    unknown = set(args) - {"field"}
    if unknown:
        raise ConfigError(f"judge toxicity: unknown argument(s) {', '.join(sorted(unknown))}; valid: field")
    scorer_for(run_cfg)


class ScoreCache:
    """Scores already computed in this run folder, keyed by scorer identity and text."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, score REAL)")
        self.prefix = json.dumps(identity, sort_keys=True, default=str)

    def _key(self, text: str) -> str:
        return hashlib.sha256((self.prefix + "\0" + text).encode()).hexdigest()

    def get_many(self, texts: list[str]) -> dict[str, float]:
        keys = {self._key(t): t for t in texts}
        out: dict[str, float] = {}
        items = list(keys)
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            query = f"SELECT key, score FROM scores WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in self.db.execute(query, chunk):
                out[keys[k]] = v
        return out

    def put_many(self, scores: dict[str, float]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO scores (key, score) VALUES (?, ?)",
                            [(self._key(t), s) for t, s in scores.items()])
        self.db.commit()

    def close(self) -> None:
        self.db.close()


@judge("toxicity", preflight=_preflight)
def toxicity(records: list[dict[str, Any]], args: dict[str, Any], run_cfg: dict[str, Any]) -> dict[str, Any]:
    """Write ``record["toxicity"]``: the scorer's probability for each of the record's outputs."""
    from evalkit.rundir import run_dir_for

    field = args.get("field", "outputs")
    scorer = scorer_for(run_cfg)
    texts = sorted({t for r in records for t in r.get(field) or []})
    t0 = time.perf_counter()
    cache = ScoreCache(run_dir_for(run_cfg) / CACHE_FILE, scorer.identity())
    try:
        known = cache.get_many(texts)
        todo = [t for t in texts if t not in known]
        # Stored chunk by chunk: an interrupted Perspective pass keeps what it paid for.
        step = max(scorer.batch_size * 4, 64)
        with tqdm(total=len(todo), desc=f"toxicity ({scorer.kind})", unit="text", file=sys.stderr, dynamic_ncols=True,
                  mininterval=1.0, disable=not run_cfg.get("progress", True) or not todo) as bar:
            for i in range(0, len(todo), step):
                chunk = todo[i : i + step]
                new = dict(zip(chunk, scorer.score(chunk, progress=False)))
                cache.put_many(new)
                known.update(new)
                bar.update(len(chunk))
    finally:
        cache.close()
    for r in records:
        r["toxicity"] = [known[t] for t in r.get(field) or []]
    info: dict[str, Any] = {"scorer": scorer.describe(), "texts": len(texts), "scored": len(todo),
                            "from_cache": len(texts) - len(todo), "seconds": round(time.perf_counter() - t0, 3)}
    if getattr(scorer, "retries", 0):
        info["retries"] = scorer.retries
    return info
