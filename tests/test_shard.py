"""Sharding a plan: every request once, choices and prefix groups together, balanced, deterministic."""

from __future__ import annotations

import pytest

from evalkit.backends.requests import request_key
from evalkit.errors import ConfigError
from evalkit.paths import SAMPLES_DIR
from evalkit.runner.plan import build_task_plans, chat_settings, load_specs, plan_requests
from evalkit.runner.shard import make_shards, shard_settings
from tests.conftest import run_config


def _plan(tmp_path, *overrides, tasks=None):
    cfg = run_config(tmp_path, *overrides)
    if tasks:
        cfg["suite"]["tasks"] = tasks
    tasks = build_task_plans(load_specs(cfg), SAMPLES_DIR, cfg.get("limit"))
    # Without a chat template the plan renders prompts itself: no model needed.
    return plan_requests(tasks, chat_settings(cfg), None, cfg["seed"])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return _plan(tmp_path_factory.mktemp("p"), "suite=card_pt", "limit=6")


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_every_request_on_exactly_one_shard(plan, count):
    shards = make_shards(plan, count)
    keys = [k for s in shards for k in s.keys]
    assert len(keys) == len(set(keys)) == len(plan.unique) and set(keys) == set(plan.unique)
    assert [s.index for s in shards] == list(range(count))


def test_same_plan_and_count_give_the_same_shards(plan, tmp_path):
    again = _plan(tmp_path, "suite=card_pt", "limit=6")
    assert make_shards(plan, 3) == make_shards(again, 3)
    assert make_shards(plan, 3) != make_shards(plan, 2)


def test_choices_of_one_question_and_whole_groups_stay_together(plan):
    shards = make_shards(plan, 3)
    where = {k: s.index for s in shards for k in s.keys}
    for task in plan.tasks:
        for reqs in task.requests:
            assert len({where[request_key(r)] for r in reqs}) == 1
    # With many groups of similar size none needs cutting: each group lies on one shard.
    by_group: dict[str, set[int]] = {}
    for k, g in plan.group.items():
        by_group.setdefault(g, set()).add(where[k])
    assert all(len(v) == 1 for v in by_group.values())
    assert sum(len(s.groups) for s in shards) == len(by_group)


def test_shards_are_balanced_by_tokens(plan):
    shards = make_shards(plan, 3)
    loads = [s.tokens for s in shards]
    assert min(loads) > 0.6 * max(loads), loads


def test_one_big_group_is_cut_into_contiguous_chunks(tmp_path):
    plan = _plan(tmp_path, "suite=smoke", tasks={"hellaswag": {"limit": 30}})
    shards = make_shards(plan, 3)
    assert all(s.keys for s in shards) and all(s.groups == shards[0].groups for s in shards)
    order = {k: i for i, k in enumerate(plan.unique)}
    spans = sorted((min(order[k] for k in s.keys), max(order[k] for k in s.keys)) for s in shards)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # contiguous, non-overlapping
    assert max(s.tokens for s in shards) < 1.5 * min(s.tokens for s in shards)


def test_more_shards_than_questions_leaves_some_empty(tmp_path):
    plan = _plan(tmp_path, "suite=smoke", tasks={"arc_easy": {"limit": 2}})
    shards = make_shards(plan, 5)
    assert sum(1 for s in shards if s.keys) == 2


def test_shard_settings_are_checked_in_one_line():
    assert shard_settings({"shard": {"count": 3, "index": 2}}) == (3, 2)
    assert shard_settings({}) == (1, None)
    with pytest.raises(ConfigError, match=r"shard\.index must be .* 0 to shard\.count-1=2"):
        shard_settings({"shard": {"count": 3, "index": 3}})
    with pytest.raises(ConfigError, match=r"shard\.count"):
        make_shards(None, 0)  # type: ignore[arg-type]


def test_a_queue_of_many_shards_cuts_groups_only_for_the_workers(tmp_path):
    plan = _plan(tmp_path, "suite=smoke", tasks={"hellaswag": {"limit": 30}})
    shards = make_shards(plan, 8, cut_share=1)
    assert sum(1 for s in shards if s.keys) == 1  # one group, one worker: never cut
