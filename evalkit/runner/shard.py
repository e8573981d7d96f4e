"""Split a plan's unique requests into shards that keep shared prefixes together.

A *unit* is one sample's requests (all choices of one question stay together); units of
one *group* (task and subset: the requests behind one few-shot prefix, one description,
one document) are kept on one shard unless the group alone is bigger than a shard's
fair share, in which case it is cut into a few contiguous chunks, each of which pays the
shared prefix once more (a handful of prefixes out of thousands of items). Shards are
balanced by estimated tokens (longest piece first onto the lightest shard) and depend
only on the plan and the shard count, so every process that plans the same run gets the
same shards.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.backends.requests import GenerateRequest, LoglikelihoodRequest, Request, RollingRequest, request_key
from evalkit.errors import ConfigError
from evalkit.runner.plan import Plan

#: Characters per token used to estimate work before any tokenizer runs.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Shard:
    """One shard: its request keys in plan order, their estimated tokens, the groups it holds."""

    index: int
    count: int
    keys: tuple[str, ...]
    tokens: int
    groups: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"


@dataclass
class _Unit:
    order: int
    keys: list[str]
    requests: list[Request]


def _text(r: Request) -> str:
    return r.text if isinstance(r, RollingRequest) else r.context


def _unit_tokens(reqs: Sequence[Request], shared: int) -> float:
    """Tokens a unit costs beyond its group's shared prefix (each distinct context once)."""
    chars = sum(len(t) - shared for t in {_text(r) for r in reqs})
    gen = 0
    for r in reqs:
        if isinstance(r, LoglikelihoodRequest):
            chars += len(r.continuation)
        elif isinstance(r, GenerateRequest):
            gen += r.max_new_tokens * r.n  # decoding dominates a generation's cost
    return chars / CHARS_PER_TOKEN + gen


def _units_by_group(plan: Plan) -> dict[str, list[_Unit]]:
    """Each group's units in plan order; a request asked twice belongs to its first asker."""
    seen: set[str] = set()
    groups: dict[str, list[_Unit]] = {}
    order = 0
    for task in plan.tasks:
        for reqs in task.requests:
            unit = _Unit(order, [], [])
            for r in reqs:
                k = request_key(r)
                if k not in seen:
                    seen.add(k)
                    unit.keys.append(k)
                    unit.requests.append(r)
            if unit.keys:
                groups.setdefault(plan.group[unit.keys[0]], []).append(unit)
                order += 1
    return groups


def _pieces(groups: dict[str, list[_Unit]], count: int) -> list[tuple[float, str, list[_Unit]]]:
    """(tokens, group, units) pieces: whole groups, or chunks of groups above the fair share."""
    costed = []
    for name, units in groups.items():
        shared = len(os.path.commonprefix([_text(r) for u in units for r in u.requests]))
        costs = [_unit_tokens(u.requests, shared) for u in units]
        costed.append((name, units, costs, shared / CHARS_PER_TOKEN))
    total = sum(sum(c) + p for _, _, c, p in costed)
    fair = total / count if count else total
    pieces = []
    for name, units, costs, prefix in costed:
        size = sum(costs) + prefix
        n_chunks = min(len(units), max(1, math.ceil(size / fair))) if fair > 0 else 1
        step = sum(costs) / n_chunks
        # A unit goes to the chunk its cost's midpoint falls in: contiguous, near-equal chunks.
        chunks: list[list[_Unit]] = [[] for _ in range(n_chunks)]
        chunk_costs = [0.0] * n_chunks
        before = 0.0
        for unit, cost in zip(units, costs):
            j = min(n_chunks - 1, int((before + cost / 2) / step)) if step > 0 else 0
            chunks[j].append(unit)
            chunk_costs[j] += cost
            before += cost
        pieces += [(c + prefix, name, ch) for c, ch in zip(chunk_costs, chunks) if ch]
    return pieces


def make_shards(plan: Plan, count: int, cut_share: int | None = None) -> list[Shard]:
    """``count`` shards covering every unique request of ``plan`` exactly once.

    A group is cut only when it exceeds ``1/cut_share`` of the work (default ``count``):
    a pull queue with more shards than workers (Ray) passes the worker count, so queue
    granularity never costs prefix sharing.
    """
    if count < 1:
        raise ConfigError(f"shard.count must be a positive integer (got {count!r})")
    pieces = _pieces(_units_by_group(plan), min(count, cut_share or count))
    # Longest piece first onto the lightest shard; ties broken by plan order, so the
    # result is a function of the plan alone.
    pieces.sort(key=lambda p: (-p[0], p[2][0].order))
    loads = [0.0] * count
    held: list[list[tuple[str, list[_Unit]]]] = [[] for _ in range(count)]
    for tokens, name, units in pieces:
        i = min(range(count), key=lambda j: (loads[j], j))
        loads[i] += tokens
        held[i].append((name, units))
    shards = []
    for i, parts in enumerate(held):
        units = sorted((u for _, us in parts for u in us), key=lambda u: u.order)
        groups = tuple(dict.fromkeys(name for name, _ in sorted(parts, key=lambda p: p[1][0].order)))
        shards.append(Shard(i, count, tuple(k for u in units for k in u.keys), round(loads[i]), groups))
    return shards


def shard_settings(cfg: dict[str, Any]) -> tuple[int, int | None]:
    """``(shard.count, shard.index)`` checked; index ``None`` means answer everything."""
    s = cfg.get("shard") or {}
    count, index = s.get("count", 1), s.get("index")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"shard.count must be a positive integer (got {count!r})")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count):
        raise ConfigError(f"shard.index must be an integer from 0 to shard.count-1={count - 1}, or null (got {index!r})")
    return count, index
