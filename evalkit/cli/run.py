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
    from evalkit import secrets
    from evalkit.config import to_dict
    from evalkit.runner.run import run
    from evalkit.runner.storage import storage_errors
    from evalkit.selection import select_tasks

    logging.getLogger("evalkit").setLevel(logging.INFO)
    try:
        plain = select_tasks(to_dict(cfg))
        plain.pop("hydra", None)
        secrets.install(plain)  # after Hydra set up logging: its handlers get the filter too
        with storage_errors():
            run_dir = run(plain)
        shard = plain.get("shard") or {}
        if shard.get("index") is not None:
            print(f"shard {shard['index']} of {shard['count']} answered in {run_dir}; "
                  f"when every shard is done: evalkit merge {run_dir}")
            return
        _print_summary(run_dir)
        if plain.get("report", True):
            from evalkit.report.build import write_report

            with storage_errors():
                print(f"card: {write_report([run_dir], run_dir / 'card.html')}")
        from evalkit.tracking import track_run

        track_run(plain, run_dir)
    except EvalkitError as e:
        print(secrets.error_line(e), file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        # Before any request was answered (loading, building prompts): nothing to save.
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        raise SystemExit(130) from None


def _print_summary(run_dir: Path) -> None:
    from evalkit.card import card_frame
    from evalkit.rundir import load_results

    res = load_results(run_dir)
    frame = card_frame([res])
    print(frame.to_string(index=False))
    for name, tr in res["tasks"].items():
        cut = tr.get("truncated") or {}
        if cut.get("requests"):
            print(f"warning: {name}: {cut['requests']} request(s) in {cut['items']} of {tr['n']} items were longer than "
                  "the model's window and were cut from the left (see results.json tasks.*.truncated)")
    print("(percent; [low, high] is the 95% interval, Wilson for proportions; ± is 1.96 standard errors otherwise)")
    print(f"run folder: {run_dir}")



main = run_main  # the entry `evalkit.cli.COMMANDS` calls
