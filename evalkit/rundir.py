"""The run folder: its name, its files, and reading it back.

    <output_dir>/<run_name>/
        config.yaml          resolved config of the run
        requests.sqlite      every answered request (the resume cache)
        samples/<task>.jsonl per-sample records
        results.json         scores, stderr, n, task hashes, model fingerprint, versions, timing

The default run name is ``<model>__<suite>__<hash of the config>``, so the same command
finds the same folder and resumes it, and any changed setting gets a folder of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from evalkit.config import NON_IDENTITY_KEYS
from evalkit.errors import EvalkitError
from evalkit.files import read_json

RESULTS = "results.json"
CONFIG = "config.yaml"
CACHE = "requests.sqlite"
SAMPLES = "samples"


def config_hash(cfg: dict[str, Any]) -> str:
    identity = {k: v for k, v in cfg.items() if k not in NON_IDENTITY_KEYS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "run"


def run_dir_for(cfg: dict[str, Any]) -> Path:
    name = cfg.get("run_name") or f"{_slug(cfg['model']['name'])}__{_slug(cfg['suite']['name'])}__{config_hash(cfg)}"
    return Path(cfg["output_dir"]).expanduser() / name


def load_results(run_dir: str | Path) -> dict[str, Any]:
    """``results.json`` of a run folder, with a clear error when it is not one."""
    path = Path(run_dir) / RESULTS
    if not Path(run_dir).exists():
        raise EvalkitError(f"{run_dir}: no such file or folder (give a run folder, e.g. runs/<model>__<suite>__<hash>)")
    if not Path(run_dir).is_dir():
        raise EvalkitError(f"{run_dir}: not a folder (give a run folder, which holds {RESULTS})")
    if not path.exists():
        started = (Path(run_dir) / CONFIG).exists()
        raise EvalkitError(f"{run_dir}: unfinished run (config.yaml but no {RESULTS}); rerun its command to finish it"
                           if started else f"{run_dir}: not a run folder (no {RESULTS} or {CONFIG})")
    res = read_json(path)
    res["run_dir"] = str(Path(run_dir).resolve())
    return res


def load_samples(run_dir: str | Path, task: str) -> list[dict[str, Any]]:
    from evalkit.files import read_jsonl

    return read_jsonl(Path(run_dir) / SAMPLES / f"{task}.jsonl")
