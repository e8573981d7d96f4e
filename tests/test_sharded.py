"""Shard mode: shards answered anywhere, per-worker cache files, resume with any worker
count, and `evalkit merge` (real subprocesses, the real embedded model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evalkit.paths import ROOT
from evalkit.runner.run import run
from evalkit.runner.sharded import merge_run
from tests.conftest import DIST_SUITE as SUITE
from tests.conftest import run_config
from tests.dist_helpers import assert_same_results

pytestmark = pytest.mark.model



@pytest.fixture
def single_run(dist_reference_run):
    """The reference: the same suite in one process."""
    return dist_reference_run


def _answer(path):
    return json.loads(path.read_text())["requests"]


def test_resume_with_another_worker_count_recomputes_nothing(backend, tmp_path, single_run):
    for i in range(2):
        run(run_config(tmp_path, *SUITE, "shard.count=2", f"shard.index={i}"), backend=backend)
    run_dir = next((tmp_path / "runs").iterdir())
    assert sorted(p.name for p in (run_dir / "cache").iterdir() if p.suffix == ".sqlite") == \
        ["shard-0-of-2.sqlite", "shard-1-of-2.sqlite"]
    assert not (run_dir / "results.json").exists()  # shards never score
    forward = backend.stats.forward_tokens
    # One process now: everything comes from the two shard files.
    assert run(run_config(tmp_path, *SUITE), backend=backend) == run_dir
    req = _answer(run_dir / "answer.json")
    assert req["computed"] == 0 and req["from_cache"] == req["unique"] > 0
    # Three shards now: still nothing computed.
    for i in range(3):
        run(run_config(tmp_path, *SUITE, "shard.count=3", f"shard.index={i}"), backend=backend)
        assert _answer(run_dir / "shards" / f"shard-{i}-of-3.json")["computed"] == 0
    assert backend.stats.forward_tokens == forward
    assert_same_results(run_dir, single_run)


def test_half_answered_run_computes_only_the_other_half(backend, tmp_path):
    run(run_config(tmp_path, *SUITE, "shard.count=2", "shard.index=0"), backend=backend)
    run_dir = next((tmp_path / "runs").iterdir())
    done = _answer(run_dir / "shards" / "shard-0-of-2.json")
    run(run_config(tmp_path, *SUITE, "shard.count=3", "shard.index=1"), backend=backend)
    run(run_config(tmp_path, *SUITE), backend=backend)
    req = _answer(run_dir / "answer.json")
    three = _answer(run_dir / "shards" / "shard-1-of-3.json")
    assert req["from_cache"] == done["computed"] + three["computed"]
    assert req["computed"] == req["unique"] - req["from_cache"] > 0


def _cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "evalkit.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_three_shard_processes_and_merge_equal_one_run(tmp_path, single_run):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [f"output_dir={tmp_path}", "report=false", "progress=false", *SUITE, "shard.count=3"]
    procs = [_cli(*args, f"shard.index={i}", env=env) for i in (0, 2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        assert "evalkit merge" in out
    run_dir = next(tmp_path.iterdir())
    merge = _cli("merge", str(run_dir), "--no-report", env=env)
    out, err = merge.communicate(timeout=300)
    assert merge.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "shard 1 of shard.count=3 not complete" in err and "shard.index=1" in err
    assert not (run_dir / "results.json").exists()

    p = _cli(*args, "shard.index=1", env=env)
    assert p.wait(timeout=600) == 0
    merge = _cli("merge", str(run_dir), env=env)
    out, err = merge.communicate(timeout=300)
    assert merge.returncode == 0, err[-2000:]
    assert (run_dir / "card.html").exists() and "run folder:" in out
    assert_same_results(run_dir, single_run)
    res = json.loads((run_dir / "results.json").read_text())
    workers = json.loads((run_dir / "answer.json").read_text())["workers"]
    assert set(workers) == {"shard-0-of-3", "shard-1-of-3", "shard-2-of-3"}
    assert res["requests"]["computed"] == res["requests"]["unique"]


def test_merge_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    from evalkit.errors import EvalkitError

    with pytest.raises(EvalkitError, match="not a run folder"):
        merge_run(tmp_path)
