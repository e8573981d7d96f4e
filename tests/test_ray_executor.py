"""executor=ray: 2 local workers, a 2-node cluster simulated on this machine, and a worker
killed mid-run all give the same per-sample results as one process (real Ray, real model)."""

from __future__ import annotations

import json
import os
import signal

import pytest

from evalkit.paths import SAMPLES_DIR
from evalkit.runner.plan import build_task_plans, chat_settings, load_specs
from evalkit.runner.ray_executor import answer_with_ray
from evalkit.runner.run import run
from evalkit.runner.score import score_run
from evalkit.rundir import run_dir_for
from tests.conftest import DIST_SUITE as SUITE
from tests.conftest import run_config
from tests.dist_helpers import assert_same_results

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.model

RAY = ("executor=ray", "executor.workers=2", "executor.shards_per_worker=3")
_STORE = 100 * 2**20  # small object store: requests and answers are a few kB


@pytest.fixture
def single_run(dist_reference_run):
    return dist_reference_run


@pytest.fixture
def local_ray():
    ray.init(address="local", num_cpus=2, object_store_memory=_STORE, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _answer(run_dir):
    return json.loads((run_dir / "answer.json").read_text())


def test_two_local_workers_equal_one_process_and_a_rerun_computes_nothing(local_ray, tmp_path, single_run):
    run_dir = run(run_config(tmp_path, *SUITE, *RAY))
    assert_same_results(run_dir, single_run)
    meta = _answer(run_dir)
    assert set(meta["workers"]) == {"ray-0", "ray-1"} and all(w["shards"] > 0 for w in meta["workers"].values())
    assert meta["requests"]["computed"] == meta["requests"]["unique"]
    assert sorted(p.name for p in (run_dir / "cache").iterdir() if p.suffix == ".sqlite") == \
        ["ray-0.sqlite", "ray-1.sqlite"]
    # Same folder with one worker: everything from the two workers' files.
    assert run(run_config(tmp_path, *SUITE, *RAY, "executor.workers=1")) == run_dir
    again = _answer(run_dir)["requests"]
    assert again["computed"] == 0 and again["from_cache"] == again["unique"]


def test_a_killed_worker_hands_its_shard_over_and_the_run_completes(local_ray, tmp_path, single_run):
    cfg = run_config(tmp_path, *SUITE, *RAY)
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True)
    tasks = build_task_plans(load_specs(cfg), SAMPLES_DIR, None)
    killed: list[str] = []

    def kill_the_other(done_by: str, infos: dict) -> None:
        # After the first finished shard, kill the other worker's process (busy on its own shard).
        if not killed:
            victim = next(n for n in infos if n != done_by)
            os.kill(infos[victim]["pid"], signal.SIGKILL)
            killed.append(victim)

    plan = answer_with_ray(tasks, chat_settings(cfg), run_dir, cfg, on_shard_done=kill_the_other)
    score_run(plan, run_dir, cfg, SAMPLES_DIR)
    meta = _answer(run_dir)
    assert killed and meta["workers_lost"] == 1 and meta["shards_reassigned"] >= 1
    assert_same_results(run_dir, single_run)


def test_two_node_cluster_on_one_machine_equals_one_process(tmp_path, single_run):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": _STORE,
                                                           "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=_STORE)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        run_dir = run(run_config(tmp_path, *SUITE, *RAY, "executor.address=auto"))
        nodes = {w["node"] for w in _answer(run_dir)["workers"].values()}
        assert len(nodes) == 2  # one worker per node: each node has one CPU
        assert_same_results(run_dir, single_run)
    finally:
        ray.shutdown()
        cluster.shutdown()
