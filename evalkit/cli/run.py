"""``evalkit [hydra overrides...]``: run a suite (the default command; --multirun works)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from evalkit.errors import EvalkitError
from evalkit.paths import CONF_DIR

_HYDRA_FLAGS_WITH_VALUE = ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--cfg", "-c",
                           "--package", "-p", "--info", "-i", "--experimental-rerun")


def _split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra flags (kept as they are) from key=value overrides."""
    flags, overrides = [], []
    it = iter(argv)
    for a in it:
        if a.startswith("-"):
            flags.append(a)
            if a in _HYDRA_FLAGS_WITH_VALUE and "=" not in a:
                flags.append(next(it, ""))
        else:
            overrides.append(a)
    return flags, overrides


def _config_dirs(flags: list[str]) -> tuple[list[str], list[str]]:
    """Take ``--config-dir DIR`` out of the Hydra flags: evalkit turns every user config
    folder (these and ``EVALKIT_CONFIG_PATH``) into one search path, checked like ``conf/``."""
    dirs, rest = [], []
    it = iter(flags)
    for f in it:
        if f in ("--config-dir", "-cd"):
            dirs.append(next(it, ""))
        elif f.startswith(("--config-dir=", "-cd=")):
            dirs.append(f.split("=", 1)[1])
        else:
            rest.append(f)
    return dirs, rest


def run_main(argv: list[str]) -> int:
    from evalkit.config_path import searchpath_override
    from evalkit.hydra_checks import check_overrides, task_override
    from evalkit.selection import cli_tasks_override

    flags, overrides = _split_args(argv)
    if any(f in ("--help", "-h") for f in flags):
        from evalkit.cli.help import help_text

        print(help_text())
        return 0
    config_dirs, flags = _config_dirs(flags)
    multirun = any(f in ("--multirun", "-m") for f in flags)
    overrides = [task_override(cli_tasks_override(o, multirun)) for o in overrides]
    if not any(f in ("--hydra-help", "--info", "-i", "--cfg", "-c") for f in flags):
        check_overrides(overrides, config_dirs)
    overrides = searchpath_override(config_dirs) + overrides
    import hydra

    @hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
    def _entry(cfg) -> None:
        _run_job(cfg)

    sys.argv = [sys.argv[0] if sys.argv else "evalkit", *flags, *overrides]
    _entry()
    return 0


def _run_job(cfg) -> None:
    from evalkit.config import to_dict
    from evalkit.runner.run import run
    from evalkit.selection import select_tasks

    logging.getLogger("evalkit").setLevel(logging.INFO)
    try:
        plain = select_tasks(to_dict(cfg))
        plain.pop("hydra", None)
        run_dir = run(plain)
        _print_summary(run_dir)
        if plain.get("report", True):
            from evalkit.report.build import write_report

            print(f"card: {write_report([run_dir], run_dir / 'card.html')}")
    except EvalkitError as e:
        print(f"evalkit: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        # Before any request was answered (loading, building prompts): nothing to save.
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        raise SystemExit(130) from None


def _print_summary(run_dir: Path) -> None:
    from evalkit.report.table import card_frame
    from evalkit.rundir import load_results

    frame = card_frame([load_results(run_dir)])
    print(frame.to_string(index=False))
    print("(percent; ± is the half-width of the 95% interval, 1.96 standard errors; per-task stderr in results.json)")
    print(f"run folder: {run_dir}")



main = run_main  # the entry `evalkit.cli.COMMANDS` calls
