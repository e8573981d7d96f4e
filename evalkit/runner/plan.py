"""Plan a run: specs -> samples -> requests -> unique request keys, each with its group.

Everything here happens before or without model work, except rendering chat templates
(a backend renders its own template; the plan asks it, which loads no weights beyond
the tokenizer already loaded with the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.backends import Backend, Request
from evalkit.backends.api import Capabilities
from evalkit.backends.requests import request_key
from evalkit.errors import ConfigError
from evalkit.judges import check_judge
from evalkit.runner.prompting import ChatSettings, sample_requests
from evalkit.tasks import Sample, TaskSpec, build_samples, load_task
from evalkit.tasks.data import fingerprint_docs

_TYPE_NEEDS = {"multiple_choice": "loglikelihood", "rolling": "rolling", "generate": "generate"}


@dataclass
class TaskPlan:
    """One task of the suite: its samples and, per sample, the requests that answer it."""

    spec: TaskSpec
    samples: list[Sample]
    data: dict[str, Any]  # fingerprint, n_docs, fewshot_ids
    requests: list[list[Request]] = field(default_factory=list)


@dataclass
class Plan:
    """The whole suite's requests, deduplicated.

    ``unique`` maps each request key to its request in first-asked order; ``owner`` names
    the first task that asked (it is charged the request's compute time); ``group`` is
    the task and subset the request belongs to: requests of one group share prompt
    prefixes (few-shot exemplars, a document's context), so a shard should keep groups whole.
    """

    tasks: list[TaskPlan]
    unique: dict[str, Request] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)
    group: dict[str, str] = field(default_factory=dict)
    total: int = 0


def chat_settings(cfg: dict[str, Any]) -> ChatSettings:
    m = cfg["model"]
    return ChatSettings(bool(m.get("chat_template", False)), bool(m.get("fewshot_as_multiturn", True)))


def load_specs(cfg: dict[str, Any]) -> list[TaskSpec]:
    """The suite's task specs with their overrides; judges' settings checked too."""
    specs = [load_task(name, overrides or {}) for name, overrides in cfg["suite"]["tasks"].items()]
    for spec in specs:
        if spec.raw.get("judge"):
            check_judge(spec.raw["judge"], cfg)
    return specs


def suite_needs(specs: list[TaskSpec], chat: ChatSettings) -> dict[str, list[str]]:
    """Capability name -> the tasks that need it."""
    needs: dict[str, list[str]] = {}
    for spec in specs:
        wanted = [_TYPE_NEEDS[spec.type]]
        if spec.type == "generate":
            g = spec.generation
            if float(g["temperature"]) != 0 or int(g["n"]) != 1 or float(g["top_p"]) < 1:
                wanted.append("sampling")
        if chat.enabled and spec.type != "rolling":
            wanted.append("chat")
        for need in wanted:
            needs.setdefault(need, []).append(spec.name)
    return needs


def check_capabilities(specs: list[TaskSpec], chat: ChatSettings, caps: Capabilities, backend: str) -> None:
    """One-line ``ConfigError`` naming the tasks a backend cannot run (before weights load)."""
    needs = suite_needs(specs, chat)
    missing = caps.missing(set(needs))
    if missing:
        parts = [f"{need} ({', '.join(needs[need])})" for need in missing]
        raise ConfigError(f"model.backend={backend} cannot do {'; '.join(parts)}: "
                          "drop those tasks from the suite or choose another model.backend")


def build_task_plans(specs: list[TaskSpec], root: Path | None, limit: int | None) -> list[TaskPlan]:
    """Each task's samples (reads the data; a bad file fails here, before the model loads)."""
    plans = []
    for spec in specs:
        samples, info = build_samples(spec, root, limit)
        info["fingerprint"] = fingerprint_docs([s.doc for s in samples])
        plans.append(TaskPlan(spec, samples, info))
    return plans


def plan_requests(tasks: list[TaskPlan], chat: ChatSettings, backend: Backend, seed: int) -> Plan:
    """Fill each task's requests and deduplicate them across the suite."""
    for task in tasks:
        task.requests = [sample_requests(s, task.spec, chat, backend, seed) for s in task.samples]
    return index_requests(tasks)


def index_requests(tasks: list[TaskPlan]) -> Plan:
    """The plan of tasks whose requests are filled in: unique keys, owners and groups."""
    plan = Plan(tasks)
    for task in tasks:
        for sample, reqs in zip(task.samples, task.requests):
            for r in reqs:
                plan.total += 1
                k = request_key(r)
                if k not in plan.unique:
                    plan.unique[k] = r
                    plan.owner[k] = task.spec.name
                    plan.group[k] = f"{task.spec.name}/{sample.group}"
    return plan
