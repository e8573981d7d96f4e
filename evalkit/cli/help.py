"""``evalkit --help``: evalkit's own help page (commands, config groups and their choices,
top-level keys, examples), built from ``COMMANDS`` and the config tree so it never lags."""

from __future__ import annotations

from pathlib import Path

import yaml

from evalkit import __version__
from evalkit.config_path import config_dirs

# Groups read by `compare`/`report` rather than by a run (``gate=...`` is refused by `run`).
_NOT_RUN_GROUPS = {"gate": "compare/report only"}
_EXAMPLES = (
    ("evalkit tasks=arc_easy,gsm8k limit=20", "two tasks, 20 items each, on the bundled samples"),
    ("evalkit suite=card_safety data_root=../shared/data limit=50", "the safety audit on a local mirror"),
    ("evalkit compare runs/<base> runs/<new> gate=release", "paired deltas; exit 1 on a regression"),
)
_TOP_KEYS = (
    ("tasks=a,b", "run just these tasks (suite name: custom-a-b); per-task settings: suite.tasks.<task>.<key>=v"),
    ("data_root=", "samples (default, bundled), a local mirror like ../shared/data, or hub"),
    ("limit=N", "items per task (per subject/subset for grouped tasks)"),
    ("max_gen_toks=N", "cap on generated tokens per request (null: each task's own)"),
    ("output_dir= run_name=", "where the run folder goes (default runs/<model>__<suite>__<hash>)"),
    ("seed= report= progress=", "random seed; write card.html; progress bars"),
)


def help_text() -> str:
    """The whole page, as printed by ``evalkit --help``."""
    from evalkit.cli import COMMANDS

    width = max(len(n) for n in COMMANDS) + 2
    lines = [f"evalkit {__version__}: reproduce model-card benchmark tables, compare checkpoints, audit safety.",
             "", "usage: evalkit [run] [KEY=VALUE...] [--multirun] [--config-dir DIR]",
             "       evalkit COMMAND [ARGS...]      (evalkit help COMMAND, or evalkit COMMAND --help)",
             "", "commands:"]
    lines += [f"  {name:<{width}}{text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "config groups (GROUP=CHOICE; * = default):"]
    defaults = _defaults()
    groups = config_groups()
    gw = max(len(g) for g in groups) + 2
    for group, choices in groups.items():
        marked = [f"{c}*" if defaults.get(group) == c else c for c in choices]
        note = f"  ({_NOT_RUN_GROUPS[group]})" if group in _NOT_RUN_GROUPS else ""
        lines.append(f"  {group:<{gw}}{', '.join(marked)}{note}")
    lines += ["", "top-level keys:"]
    kw = max(len(k) for k, _ in _TOP_KEYS) + 2
    lines += [f"  {k:<{kw}}{t}" for k, t in _TOP_KEYS]
    lines += ["", "examples:"]
    lines += [f"  {cmd}\n      {what}" for cmd, what in _EXAMPLES]
    lines += ["", "Own suite/model/gate files: --config-dir DIR (or EVALKIT_CONFIG_PATH=DIR1:DIR2) holding",
              "suite/NAME.yaml etc. Hydra's own help: --hydra-help; the composed config: --cfg job."]
    return "\n".join(lines)


def config_groups() -> dict[str, list[str]]:
    """Group -> its choices, from evalkit's ``conf/`` and every user config folder."""
    out: dict[str, set[str]] = {}
    for root in config_dirs():
        for sub in sorted(p for p in Path(root).iterdir() if p.is_dir()):
            out.setdefault(sub.name, set()).update(p.stem for p in sub.glob("*.yaml"))
    return {g: sorted(c) for g, c in sorted(out.items()) if c}


def _defaults() -> dict[str, str]:
    with open(config_dirs()[0] / "config.yaml", encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    return {k: v for d in cfg.get("defaults", []) if isinstance(d, dict) for k, v in d.items()}
