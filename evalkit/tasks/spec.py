"""Task specs: one YAML file per benchmark in ``tasks/``, validated and hashed.

The hash covers everything that changes a number (data mapping, prompt text, shots,
answer extraction, metrics, generation settings) and nothing that does not (the card
labels and the protocol notes), so two runs with equal hashes are comparable item by item.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from evalkit.errors import ConfigError
from evalkit.paths import tasks_dir
from evalkit.tasks.templating import TemplateError, check_syntax

TYPES = ("multiple_choice", "generate", "rolling")

# Top-level keys of a spec, and whether they enter the hash.
_KEYS: dict[str, bool] = {
    "name": False,
    "card": False,  # table, row, metric label, order, scale: display only
    "protocol": False,  # prose: how the task follows the card, and why
    "type": True,
    "source": True,
    "prompt": True,
    "fewshot": True,
    "choices": True,
    "gold": True,
    "contexts": True,
    "continuation": True,
    "target": True,
    "text": True,
    "generation": True,
    "extract": True,
    "metrics": True,
    "primary": True,
    "judge": True,
    "aggregate": True,
    "exclude_fewshot_from_eval": True,
    # run-time selection; recorded in results but not part of the task's identity
    "limit": False,
    "groups": False,
}
_EXPRESSIONS = ("choices", "gold", "contexts", "continuation", "target", "text")
_FEWSHOT_DEFAULTS = {"n": 0, "split": "fewshot", "select": "first", "seed": 1234, "shared": True,
                     "target": None, "allow_fewer": False, "docs": None}
_PROMPT_DEFAULTS = {"description": "", "text": "", "target_delimiter": " ", "fewshot_delimiter": "\n\n"}
_GENERATION_DEFAULTS = {"until": [], "max_new_tokens": 256, "temperature": 0.0, "top_p": 1.0, "n": 1}


@dataclass
class TaskSpec:
    """A validated task spec. ``raw`` is the YAML (with overrides applied) as a dict."""

    raw: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def type(self) -> str:
        return self.raw["type"]

    @property
    def source(self) -> dict[str, Any]:
        return self.raw["source"]

    @property
    def card(self) -> dict[str, Any]:
        return self.raw.get("card") or {}

    @property
    def prompt(self) -> dict[str, Any]:
        return {**_PROMPT_DEFAULTS, **(self.raw.get("prompt") or {})}

    @property
    def fewshot(self) -> dict[str, Any]:
        return {**_FEWSHOT_DEFAULTS, **(self.raw.get("fewshot") or {})}

    @property
    def generation(self) -> dict[str, Any]:
        return {**_GENERATION_DEFAULTS, **(self.raw.get("generation") or {})}

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """Metrics as ``{"name": ..., **args}`` dicts (a bare string means no arguments)."""
        return [{"name": m} if isinstance(m, str) else dict(m) for m in self.raw.get("metrics", [])]

    @property
    def metric_keys(self) -> dict[str, str]:
        """Result key of each metric (its ``as`` alias, else its name) -> metric name."""
        return {m.get("as", m["name"]): m["name"] for m in self.metrics}

    @property
    def primary(self) -> str:
        return self.raw.get("primary") or next(iter(self.metric_keys))

    @property
    def limit(self) -> int | None:
        return self.raw.get("limit")

    @property
    def groups(self) -> list[str] | None:
        return self.raw.get("groups")

    @cached_property
    def hash(self) -> str:
        """Content hash of everything that changes a number."""
        hashed = {k: v for k, v in self.raw.items() if _KEYS.get(k, True)}
        blob = json.dumps(hashed, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def available_tasks() -> list[str]:
    """Names of the task specs in the tasks folder."""
    return sorted(p.stem for p in tasks_dir().glob("*.yaml"))


def load_task(name: str, overrides: dict[str, Any] | None = None) -> TaskSpec:
    """Load ``tasks/<name>.yaml``, apply per-run overrides (deep-merged), and validate it."""
    path = tasks_dir() / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown task {name!r} (no {path}); available: {', '.join(available_tasks())}")
    with open(path, encoding="utf-8") as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}{at}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a task spec must be a mapping")
    raw.setdefault("name", name)
    for key, value in (overrides or {}).items():
        if key not in _KEYS:
            raise ConfigError(f"task {name}: unknown key {key!r} in the suite's overrides; valid keys: {', '.join(_KEYS)}")
        raw[key] = _merge(raw.get(key), value)
    spec = TaskSpec(raw, path)
    validate(spec)
    return spec


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for k, v in override.items():
            out[k] = _merge(out.get(k), v)
        return out
    return copy.deepcopy(override)


def validate(spec: TaskSpec) -> None:
    """Check a spec's structure and template syntax; errors name the file and key."""
    raw, where = spec.raw, spec.path

    def fail(msg: str) -> None:
        raise ConfigError(f"{where}: {msg}")

    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        fail(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(_KEYS)}")
    if raw.get("type") not in TYPES:
        fail(f"type must be one of {', '.join(TYPES)} (got {raw.get('type')!r})")
    src = raw.get("source")
    if not isinstance(src, dict) or not (set(src) & {"hub", "local"}):
        fail("source must define 'hub' and/or 'local'")
    for kind, s in src.items():
        if kind not in ("hub", "local"):
            fail(f"source.{kind}: unknown source kind (use hub or local)")
        if "eval" not in (s.get("splits") or {}):
            fail(f"source.{kind}.splits must name an 'eval' split")
        if kind == "hub" and "path" not in s:
            fail("source.hub.path (the dataset id) is required")
        if not isinstance(s.get("fields"), dict):
            fail(f"source.{kind}.fields (canonical field -> expression over the raw row) is required")
        _check_source_expressions(fail, f"source.{kind}", s)
        for role, value in s["splits"].items():
            for i, entry in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(entry, dict):
                    _check_source_expressions(fail, f"source.{kind}.splits.{role}[{i}]", entry)
    p = spec.prompt
    for key in ("description", "text"):
        _syntax(fail, f"prompt.{key}", p[key], expression=False)
    if spec.type != "rolling" and not p["text"] and "contexts" not in raw:
        fail("prompt.text is required")
    for key in _EXPRESSIONS:
        if key in raw:
            _syntax(fail, key, raw[key], expression=True)
    required = {"multiple_choice": ("gold",), "generate": ("target",), "rolling": ("text",)}[spec.type]
    for key in required:
        if key not in raw:
            fail(f"a {spec.type} task needs {key!r}")
    if spec.type == "multiple_choice" and "choices" not in raw:
        fail("a multiple_choice task needs 'choices' (continuations to score)")
    fs = spec.fewshot
    if not isinstance(fs["n"], int) or fs["n"] < 0:
        fail(f"fewshot.n must be a non-negative integer (got {fs['n']!r})")
    if fs["select"] not in ("first", "random"):
        fail(f"fewshot.select must be 'first' or 'random' (got {fs['select']!r})")
    if fs["target"] is not None:
        _syntax(fail, "fewshot.target", fs["target"], expression=False)
    if fs["docs"] is not None and not (isinstance(fs["docs"], list) and all(isinstance(d, dict) for d in fs["docs"])):
        fail("fewshot.docs must be a list of documents (mappings of canonical fields)")
    if not spec.metrics:
        fail("metrics: list at least one metric")
    if spec.primary not in spec.metric_keys:
        fail(f"primary {spec.primary!r} is not one of the metrics ({', '.join(spec.metric_keys)})")
    try:
        from evalkit.metrics.checks import check_scoring

        check_scoring(spec.metrics, raw.get("extract"), raw.get("aggregate", "micro"), spec.type)
    except ConfigError as e:
        fail(str(e))
    lim = raw.get("limit")
    if lim is not None and (not isinstance(lim, int) or lim < 1):
        fail(f"limit must be a positive integer (got {lim!r})")


def _check_source_expressions(fail, where: str, s: dict[str, Any]) -> None:
    for fname, expr in (s.get("fields") or {}).items():
        _syntax(fail, f"{where}.fields.{fname}", expr, expression=True)
    if s.get("filter") is not None:
        _syntax(fail, f"{where}.filter", s["filter"], expression=True)
    for tname, tmpl in (s.get("texts") or {}).items():
        _syntax(fail, f"{where}.texts.{tname}", tmpl, expression=False)


def _syntax(fail, key: str, source: Any, *, expression: bool) -> None:
    if not isinstance(source, str):
        fail(f"{key} must be a string (got {type(source).__name__})")
    try:
        check_syntax(source, expression=expression)
    except TemplateError as e:
        fail(f"{key}: {e}")
