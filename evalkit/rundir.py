"""The run folder: its name, its files, and reading it back.

    <output_dir>/<run_name>/
        config.yaml          resolved config of the run
        requests.sqlite      every answered request (the resume cache of a single process)
        cache/<worker>.sqlite  the same, one file per worker of a sharded or Ray run
        plan.json.gz         every sample's requests (written once; `evalkit merge` scores from it)
        shards/<shard>.json  one per finished shard (shard mode): its answer.json
        answer.json          what scoring needs of the model: fingerprint, work counters, timing
        samples/<task>.jsonl per-sample records
        results.json         scores, stderr, n, task hashes, model fingerprint, versions, timing

The default run name is ``<model>__<suite>__<hash of the config>``, so the same command
finds the same folder and resumes it, and any setting that can change a number gets a
folder of its own. ``NON_IDENTITY_KEYS`` is the one list of settings that cannot: it
decides both the folder hash and which settings label a run in reports.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.files import read_json

RESULTS = "results.json"
CONFIG = "config.yaml"
CACHE = "requests.sqlite"
ANSWER = "answer.json"
SAMPLES = "samples"


#: Dotted config keys (with their subtrees) that change no number: where output goes,
#: display, safety switches that refuse rather than change results, and speed-only model
#: settings (the prefix-sharing and batching paths are tested equal to the reference).
NON_IDENTITY_KEYS = (
    "output_dir", "run_name", "report", "progress", "wait_for_lock", "tracking",
    "sandbox.allow_code_execution",
    "model.prefix_sharing", "model.continuous_batching", "model.draft_tokens", "model.batch_size",
    # How the work is spread (shards, Ray workers): answers are keyed by content, so
    # any split gives the same numbers and resumes the same folder.
    "shard", "executor",
)


def is_identity_key(dotted: str) -> bool:
    """Whether the dotted config key ``dotted`` is part of a run's identity."""
    return not any(dotted == k or dotted.startswith(k + ".") for k in NON_IDENTITY_KEYS)


def identity(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` without its non-identity keys."""

    def strip(node: Any, prefix: str) -> Any:
        if not isinstance(node, dict):
            return node
        return {k: strip(v, f"{prefix}{k}.") for k, v in node.items() if is_identity_key(f"{prefix}{k}")}

    return strip(cfg, "")


def config_hash(cfg: dict[str, Any]) -> str:
    """Short hash of the run's identity (names its folder)."""
    return hashlib.sha256(json.dumps(identity(cfg), sort_keys=True, default=str).encode()).hexdigest()[:10]


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
