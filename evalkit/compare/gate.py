"""Release gates: per-row thresholds and directions, composed by Hydra from ``conf/gate/``.

``gate=release`` on the command line selects ``conf/gate/release.yaml``; any of its keys
can be overridden (``gate.alpha=0.01``, ``gate.rows.MMLU.max_drop=0.5``). A row's rule is
merged from ``default`` < ``tables.<table>`` < ``groups.<name>`` (when the row is listed
in its ``rows``) < ``rows.<row or task>``. Every row, group member and table named must
exist (a card row, a task, or a card table): a typo is an error, never a silent no-op.
``policy`` says which verdicts other than a regression block the release.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from evalkit.errors import ConfigError
from evalkit.paths import CONF_DIR, REPORTS_DIR, tasks_dir

GATE_DIR = CONF_DIR / "gate"
WORSE = ("auto", "lower", "higher")
_TOP_KEYS = ("name", "alpha", "confidence", "resamples", "seed", "recompute_budget_s", "policy",
             "default", "tables", "groups", "rows")
_TABLES = ("capability", "safety", "other")
# Verdicts other than "regression" that block a release unless the policy says "warn".
POLICY_KEYS = ("inconclusive", "missing", "not_testable", "partial")
_POLICY_DEFAULT = {k: "fail" for k in POLICY_KEYS}
_RULE_KEYS = ("max_drop", "worse", "enforce")
# Statistics settings when no gate is given (deltas and tests, but no verdicts).
_DEFAULTS: dict[str, Any] = {"name": None, "alpha": 0.05, "confidence": 0.95, "resamples": 10_000, "seed": 1234,
                             "recompute_budget_s": 120.0, "policy": dict(_POLICY_DEFAULT),
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
    policy: dict[str, str]  # inconclusive / missing / not_testable / partial -> fail | warn
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
    policy = merged["policy"] or {}
    if not isinstance(policy, dict):
        raise ConfigError(f"{where}: gate.policy must map {', '.join(POLICY_KEYS)} to fail or warn (got {policy!r})")
    for k, v in policy.items():
        if k not in POLICY_KEYS:
            raise ConfigError(f"{where}: unknown key gate.policy.{k}; valid keys: {', '.join(POLICY_KEYS)}")
        if v not in ("fail", "warn"):
            raise ConfigError(f"{where}: gate.policy.{k} must be fail or warn (got {v!r})")
    default = {**_DEFAULTS["default"], **(merged["default"] or {})}
    _check_rule(default, f"{where}: gate.default")
    for section in ("tables", "groups", "rows"):
        entries = merged[section] or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"{where}: gate.{section} must map names to rules (got {entries!r})")
        for key, rule in entries.items():
            _check_rule(rule, f"{where}: gate.{section}.{key}", allow_rows=section == "groups")
    _check_names(merged, where)
    return Gate(name and str(merged["name"] or name), float(alpha), float(conf), int(merged["resamples"]),
                int(merged["seed"]), float(budget), {**_POLICY_DEFAULT, **policy}, default,
                dict(merged["tables"] or {}), dict(merged["groups"] or {}), dict(merged["rows"] or {}))


def known_rows() -> set[str]:
    """Names a gate may key a row by: the card's rows, and every task spec's name and card rows."""
    names: set[str] = set()
    with open(REPORTS_DIR / "gemma2_card.yaml", encoding="utf-8") as f:
        card = yaml.safe_load(f) or {}
    for table in _TABLES:
        names.update(r["row"] for r in (card.get(table) or {}).get("rows", []) if r.get("row"))
    for path in tasks_dir().glob("*.yaml"):
        names.add(path.stem)
        try:
            with open(path, encoding="utf-8") as f:
                spec = yaml.safe_load(f) or {}
        except yaml.YAMLError:
            continue  # a broken task file is reported when the task is loaded
        entry = spec.get("card") or {}
        names.update(e["row"] for e in (entry.get("rows") or [entry]) if isinstance(e, dict) and e.get("row"))
    return names


def _check_names(cfg: dict[str, Any], where: str) -> None:
    """A rule keyed by a name no row has would silently do nothing: refuse it."""
    for t in cfg["tables"] or {}:
        if t not in _TABLES:
            raise ConfigError(f"{where}: gate.tables.{t}: no such card table; choose one of: {', '.join(_TABLES)}")
    for g, rule in (cfg["groups"] or {}).items():
        if not rule.get("rows"):
            raise ConfigError(f"{where}: gate.groups.{g}: no such group (a group needs rows: [...]); "
                              f"groups: {', '.join(k for k, v in cfg['groups'].items() if v.get('rows')) or 'none'}")
    named = [(f"gate.rows.{r}", r) for r in cfg["rows"] or {}]
    named += [(f"gate.groups.{g}.rows", r) for g, rule in (cfg["groups"] or {}).items() for r in rule.get("rows") or []]
    if not named:
        return
    known = known_rows()
    for key, row in named:
        if row not in known:
            close = difflib.get_close_matches(row, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "use a card row (e.g. ARC-e) or a task name (e.g. arc_easy)"
            raise ConfigError(f"{where}: {key}: no card row or task is called {row!r}; {hint}")


def _check_rule(rule: Any, where: str, allow_rows: bool = False) -> None:
    if not isinstance(rule, dict):
        raise ConfigError(f"{where} must be a mapping like {{max_drop: 1.0, worse: auto}} (got {rule!r})")
    valid = _RULE_KEYS + (("rows",) if allow_rows else ())
    for k, v in rule.items():
        if k not in valid:
            raise ConfigError(f"{where}.{k}: unknown key; valid keys: {', '.join(valid)}")
        if k == "max_drop" and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)):
            # A row passes only when its interval shows the drop is below max_drop; no finite
            # sample can show a drop below 0, so 0 would make the row inconclusive forever.
            raise ConfigError(f"{where}.max_drop must be a number > 0 (points on the card's scale; a row passes when "
                              f"its interval shows the drop is smaller, which no sample can show for 0; got {v!r})")
        if k == "worse" and v not in WORSE:
            raise ConfigError(f"{where}.worse must be one of {', '.join(WORSE)} (got {v!r})")
        if k == "enforce" and not isinstance(v, bool):
            raise ConfigError(f"{where}.enforce must be true or false (got {v!r})")
        if k == "rows" and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise ConfigError(f"{where}.rows must be a list of card rows or task names (got {v!r})")
