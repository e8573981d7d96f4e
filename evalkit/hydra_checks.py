"""Check command-line overrides before Hydra runs, so mistakes end in one line.

Each override is composed against the config tree (every value of a ``--multirun``
sweep is tried), and Hydra's multi-line errors are turned into one line naming the key
and its valid choices. The composed configs are then checked for bad values.
"""

from __future__ import annotations

import re

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import OmegaConf

from evalkit.errors import ConfigError
from evalkit.config_path import searchpath_override
from evalkit.paths import CONF_DIR


def check_overrides(overrides: list[str], config_dir: list[str] | tuple[str, ...] = ()) -> None:
    """Raise ``ConfigError`` (one line) if any override or resulting value is invalid.

    ``config_dir``: the user's config folders (``--config-dir``), searched after ``conf/``."""
    from evalkit.config import to_dict, validate
    from evalkit.selection import check_task_settings, is_task_setting, refuse_suite_tasks_merge, select_tasks

    for o in overrides:
        refuse_suite_tasks_merge(o)
    overrides = [task_override(o) for o in overrides]
    search = searchpath_override(config_dir)

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as e:
        raise ConfigError(f"cannot parse override: {str(e).splitlines()[0]}") from None
    choices = []
    for o in parsed:
        if o.is_sweep_override():
            key = o.get_key_element()
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        # Vary one override at a time: checks every sweep value without the full product.
        base = [c[0] for c in choices]
        combos = [base] + [base[:i] + [opt] + base[i + 1 :] for i, opts in enumerate(choices) for opt in opts[1:]]
        for combo in combos:
            plain = to_dict(_compose(search + combo))
            suite_only = to_dict(_compose(search + [o for o in combo if not is_task_setting(o)]))
            check_task_settings(combo, plain, list(suite_only["suite"].get("tasks") or {}))
            validate(select_tasks(plain))
    GlobalHydra.instance().clear()


def task_override(o: str) -> str:
    """``suite.tasks.<task>.<key>=v`` as Hydra takes it: it may add a key the suite file
    does not list, for which Hydra demands a "++" prefix that nobody should have to know."""
    return "++" + o if re.match(r"^suite\.tasks\.[^=]+\.[^=]+=", o) else o


def compose_config(overrides: list[str] | None = None, config_dir: list[str] | tuple[str, ...] = ()) -> dict:
    """The resolved run config for ``overrides``, as the ``evalkit`` command would build it
    (for tests, benchmarks and scripts that call ``evalkit.runner.run.run`` directly)."""
    from evalkit.config import to_dict
    from evalkit.selection import cli_tasks_override, select_tasks

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            wanted = [task_override(cli_tasks_override(o, multirun=False)) for o in overrides or []]
            cfg = select_tasks(to_dict(_compose(searchpath_override(config_dir) + wanted)))
    finally:
        GlobalHydra.instance().clear()
    cfg.pop("hydra", None)
    return cfg


def _compose(overrides: list[str]):
    try:
        return compose(config_name="config", overrides=overrides)
    except HydraException as e:
        raise ConfigError(_one_line(str(e), overrides)) from None


def _one_line(msg: str, overrides: list[str]) -> str:
    m = re.search(r"Could not find '([^/']+)/([^']+)'.*?Available options in '[^']+':\n((?:\t[^\n]*\n?)*)", msg, re.S)
    if m:
        group, value = m.group(1), m.group(2)
        names = [o.strip() for o in m.group(3).splitlines() if o.strip()]
        return f"{group}={value}: no such {group} config; choose one of: {', '.join(names)}"
    m = re.search(r"Could not override '([^']+)'", msg)
    if m:
        key = m.group(1)
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        valid = _keys_of(parent, [o for o in overrides if o.split("=")[0].lstrip("+~") != key])
        where = f"under {parent!r}" if parent else "at the top level"
        return f"unknown config key {key!r}; valid keys {where}: {', '.join(valid)}"
    return next((line for line in msg.splitlines() if line.strip()), msg)


def _keys_of(parent: str, overrides: list[str]) -> list[str]:
    try:
        cfg = compose(config_name="config", overrides=overrides)
    except HydraException:
        return []
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return sorted(str(k) for k in node.keys()) if node is not None and hasattr(node, "keys") else []
