"""Helpers for the distributed-run tests: two run folders hold the same per-sample answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

from evalkit.files import read_jsonl


def assert_same_results(a: Path, b: Path, tol: float = 1e-4) -> None:
    """Same tasks, same per-sample predictions, outputs and scores; log-likelihoods within ``tol``."""
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert set(ra["tasks"]) == set(rb["tasks"])
    for task, ta in ra["tasks"].items():
        tb = rb["tasks"][task]
        assert ta["n"] == tb["n"] and ta["hash"] == tb["hash"]
        for name, m in ta["metrics"].items():
            assert math.isclose(m["value"], tb["metrics"][name]["value"], abs_tol=1e-9), (task, name)
        recs_a, recs_b = read_jsonl(a / ta["samples_file"]), read_jsonl(b / tb["samples_file"])
        assert [r["id"] for r in recs_a] == [r["id"] for r in recs_b]
        for x, y in zip(recs_a, recs_b):
            assert x.get("pred") == y.get("pred") and x.get("outputs") == y.get("outputs"), (task, x["id"])
            assert x["scores"] == y["scores"], (task, x["id"])
            for la, lb in zip(x.get("logprobs", []), y.get("logprobs", [])):
                assert abs(la - lb) <= tol, (task, x["id"], la, lb)
