"""Release gates: per-row thresholds and directions, composed by Hydra from ``conf/gate/``.

``gate=release`` on the command line selects ``conf/gate/release.yaml``; any of its keys
can be overridden (``gate.alpha=0.01``, ``gate.rows.MMLU.max_drop=0.5``). A row's rule is
merged from ``default`` < ``tables.<table>`` < ``groups.<name>`` (when the row is listed
in its ``rows``) < ``rows.<row or task>``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from evalkit.errors import ConfigError
from evalkit.paths import CONF_DIR

GATE_DIR = CONF_DIR / "gate"
WORSE = ("auto", "lower", "higher")
_TOP_KEYS = ("name", "alpha", "confidence", "resamples", "seed", "recompute_budget_s",
             "default", "tables", "groups", "rows")
_RULE_KEYS = ("max_drop", "worse", "enforce")
# Statistics settings when no gate is given (deltas and tests, but no verdicts).
_DEFAULTS: dict[str, Any] = {"name": None, "alpha": 0.05, "confidence": 0.95, "resamples": 10_000, "seed": 1234,
                             "recompute_budget_s": 120.0,
                             "default": {"max_drop": 1.0, "worse": "auto", "enforce": True},
                             "tables": {}, "groups": {}, "rows": {}}


@dataclass(frozen=True)
class Rule:
    """What counts as a regression for one row."""

    max_drop: float  # points on the card's scale
    worse: str  # lower | higher (resolved; never auto)
    enforce: bool
    source: str  # which config entries set it, for the report ("default < tables.safety")


@dataclass
class Gate:
    """A gate config (or, with ``name=None``, only the statistics settings)."""

    name: str | None
    alpha: float
    confidence: float
    resamples: int
    seed: int
    recompute_budget_s: float  # per row, for metrics recomputed on every resample
    default: dict[str, Any]
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def enforced(self) -> bool:
        """Whether this is a real gate (verdicts, exit status) rather than bare settings."""
        return self.name is not None

    def rule_for(self, table: str, row: str, task: str, higher_is_better: bool) -> Rule:
        """The merged rule of a row; ``worse: auto`` resolved from the metric's direction."""
        merged = dict(self.default)
        source = ["default"]
        names = {row, task}
        if table in self.tables:
            merged.update(self.tables[table])
            source.append(f"tables.{table}")
        for gname, g in self.groups.items():
            if names & set(g.get("rows") or []):
                merged.update({k: v for k, v in g.items() if k != "rows"})
                source.append(f"groups.{gname}")
        for key in (task, row):  # the card row label wins over the task name
            if key in self.rows:
                merged.update(self.rows[key])
                source.append(f"rows.{key}")
        worse = merged.get("worse", "auto")
        if worse == "auto":
            worse = "lower" if higher_is_better else "higher"
        return Rule(float(merged.get("max_drop", 0.0)), worse, bool(merged.get("enforce", True)), " < ".join(source))


def no_gate(**settings: Any) -> Gate:
    """Statistics settings without a gate (``evalkit compare`` and ``report`` without ``gate=``)."""
    return _build({**_DEFAULTS, **settings}, "defaults", None)


def available_gates() -> list[str]:
    from evalkit.config_path import config_dirs  # the user's gate files (EVALKIT_CONFIG_PATH) too

    return sorted({p.stem for d in config_dirs() for p in (d / "gate").glob("*.yaml")})


def load_gate(overrides: list[str]) -> Gate | None:
    """Compose ``gate=NAME`` plus ``gate.*`` overrides with Hydra; None without ``gate=``."""
    selected = [o for o in overrides if re.match(r"^\+*gate=", o)]
    if not selected:
        if overrides:
            raise ConfigError(f"{overrides[0]}: gate settings need a gate; add gate=NAME "
                              f"(choose one of: {', '.join(available_gates())})")
        return None
    name = selected[-1].split("=", 1)[1]
    if name not in available_gates():
        raise ConfigError(f"gate={name}: no such gate config in {GATE_DIR}; choose one of: {', '.join(available_gates())}")
    rest = [_add_prefix(o) for o in overrides if o not in selected]
    for o in rest:
        if not re.match(r"^[+~]*gate\.", o):
            raise ConfigError(f"{o}: not a gate setting; compare takes gate=NAME and gate.KEY=VALUE overrides")
    cfg = _compose([f"+gate={name}", *rest])
    return _build(cfg.get("gate") or {}, f"gate={name}", name)


def _add_prefix(o: str) -> str:
    # gate.rows.<row>.<key>=v may name a row the file does not list; Hydra would demand "++".
    return "++" + o if re.match(r"^(gate\.(rows|tables|groups)\.[^=]+)=", o) else o


def _compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            from evalkit.config_path import searchpath_override

            cfg = compose(config_name=None, overrides=searchpath_override() + overrides)
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except HydraException as e:
        m = re.search(r"Could not override '(gate\.[^']+)'", str(e))
        if m:
            raise ConfigError(f"unknown gate setting {m.group(1)}; valid keys: "
                              f"{', '.join('gate.' + k for k in _TOP_KEYS)}") from None
        first = next((line for line in str(e).splitlines() if line.strip()), str(e))
        raise ConfigError(f"gate config: {first}") from None
    finally:
        GlobalHydra.instance().clear()


def _build(raw: dict[str, Any], where: str, name: str | None) -> Gate:
    for k in raw:
        if k not in _TOP_KEYS:
            raise ConfigError(f"{where}: unknown key gate.{k}; valid keys: {', '.join(_TOP_KEYS)}")
    merged = {**_DEFAULTS, **raw}
    alpha, conf = merged["alpha"], merged["confidence"]
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"{where}: gate.alpha must be between 0 and 1 (got {alpha!r})")
    if not (isinstance(conf, (int, float)) and 0 < conf < 1):
        raise ConfigError(f"{where}: gate.confidence must be between 0 and 1 (got {conf!r})")
    if not (isinstance(merged["resamples"], int) and merged["resamples"] >= 1000):
        raise ConfigError(f"{where}: gate.resamples must be an integer >= 1000 (got {merged['resamples']!r})")
    budget = merged["recompute_budget_s"]
    if not (isinstance(budget, (int, float)) and budget > 0):
        raise ConfigError(f"{where}: gate.recompute_budget_s must be a positive number of seconds (got {budget!r})")
    default = {**_DEFAULTS["default"], **(merged["default"] or {})}
    _check_rule(default, f"{where}: gate.default")
    for section in ("tables", "groups", "rows"):
        entries = merged[section] or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"{where}: gate.{section} must map names to rules (got {entries!r})")
        for key, rule in entries.items():
            _check_rule(rule, f"{where}: gate.{section}.{key}", allow_rows=section == "groups")
    return Gate(name and str(merged["name"] or name), float(alpha), float(conf), int(merged["resamples"]),
                int(merged["seed"]), float(budget), default, dict(merged["tables"] or {}), dict(merged["groups"] or {}),
                dict(merged["rows"] or {}))


def _check_rule(rule: Any, where: str, allow_rows: bool = False) -> None:
    if not isinstance(rule, dict):
        raise ConfigError(f"{where} must be a mapping like {{max_drop: 1.0, worse: auto}} (got {rule!r})")
    valid = _RULE_KEYS + (("rows",) if allow_rows else ())
    for k, v in rule.items():
        if k not in valid:
            raise ConfigError(f"{where}.{k}: unknown key; valid keys: {', '.join(valid)}")
        if k == "max_drop" and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and math.isfinite(v)):
            raise ConfigError(f"{where}.max_drop must be a number >= 0 (points on the card's scale; got {v!r})")
        if k == "worse" and v not in WORSE:
            raise ConfigError(f"{where}.worse must be one of {', '.join(WORSE)} (got {v!r})")
        if k == "enforce" and not isinstance(v, bool):
            raise ConfigError(f"{where}.enforce must be true or false (got {v!r})")
        if k == "rows" and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise ConfigError(f"{where}.rows must be a list of card rows or task names (got {v!r})")
