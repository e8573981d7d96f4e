"""``evalkit watch CKPT_DIR suite=... baseline=RUN_OR_MODEL gate=release [options] [overrides]``
and ``evalkit trend RUN_DIR... [baseline=RUN_DIR] [gate=release] [-o trend.html]``.

watch options (key=value): baseline, stop_on_regression (true: exit 1 at the first
checkpoint that fails the gate against the baseline), poll_s, settle_s, idle_exit_s
(end after this long without a new checkpoint), max_checkpoints, marker (a file the
trainer writes last). gate=NAME and gate.KEY=VALUE select the gate; every other
key=value is a run override (suite=, data_root=, limit=, model.dtype=, tracking=mlflow).

Exit status: 0, 1 (a regression with stop_on_regression), 2 (usage or config error).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError

_OPTIONS: dict[str, Any] = {"baseline": str, "stop_on_regression": bool, "poll_s": float, "settle_s": float,
                            "idle_exit_s": float, "max_checkpoints": int, "marker": str}


def watch_main(argv: list[str]) -> int:
    from evalkit.hydra_checks import task_override
    from evalkit.watch.loop import WatchSettings, watch

    ap = argparse.ArgumentParser(prog="evalkit watch", description=__doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt_dir", metavar="CKPT_DIR", help="folder the trainer writes checkpoint-<step>/ folders into")
    ap.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    ns = ap.parse_args(argv)
    s = WatchSettings(Path(ns.ckpt_dir))
    for arg in ns.settings:
        if arg.startswith("~"):  # Hydra's delete override, e.g. ~suite.tasks.mmlu
            s.run_overrides.append(arg)
            continue
        if "=" not in arg:
            raise ConfigError(f"{arg}: expected KEY=VALUE (e.g. suite=regression_demo, baseline=runs/<run>, gate=release)")
        key, value = arg.split("=", 1)
        if key in _OPTIONS:
            setattr(s, key, _parse(key, value))
        elif re.match(r"^[+~]*gate[.=]", key + "="):
            s.gate_overrides.append(arg)
        else:
            s.run_overrides.append(task_override(arg))
    return watch(s)


def trend_main(argv: list[str]) -> int:
    from evalkit.compare.gate import load_gate, no_gate
    from evalkit.rundir import load_results
    from evalkit.watch.trend import compare_series, order_by_step, write_trend

    ap = argparse.ArgumentParser(prog="evalkit trend", description="The trend report of finished checkpoint runs, "
                                 "ordered by training step (from trainer_state.json or the checkpoint's name).")
    ap.add_argument("args", nargs="+", metavar="RUN_DIR | baseline=RUN_DIR | gate=NAME | gate.KEY=VALUE")
    ap.add_argument("-o", "--output", default="trend.html", help="HTML file to write (default: trend.html)")
    ap.add_argument("--screenshot", help="also save a PNG of the page (needs Debian's chromium)")
    ns = ap.parse_args(argv)
    settings = [a for a in ns.args if "=" in a and not Path(a).exists()]
    run_dirs = [a for a in ns.args if a not in settings]
    base = [a.split("=", 1)[1] for a in settings if a.startswith("baseline=")]
    gate = load_gate([a for a in settings if not a.startswith("baseline=")]) or no_gate()
    if not run_dirs:
        raise ConfigError("trend needs at least one run folder: evalkit trend RUN_DIR... [baseline=RUN_DIR] [gate=NAME]")
    points = order_by_step([load_results(d) for d in run_dirs])
    baseline = load_results(base[-1]) if base else None
    compare_series(baseline, points, gate)
    path = write_trend(ns.output, baseline, points, gate)
    for p in points:
        from evalkit.watch.trend import verdict

        print(f"step {p.step} {p.label}: vs baseline {verdict(p.vs_base).upper() or '-'}; vs previous {verdict(p.vs_prev).upper() or '-'}")
    print(f"trend: {path}")
    if ns.screenshot:
        from evalkit.report.browser import screenshot

        print(f"screenshot: {screenshot(path, ns.screenshot)}")
    return 0


def _parse(key: str, value: str) -> Any:
    kind = _OPTIONS[key]
    v = value.strip()
    if v.lower() in ("null", "none", "") and kind is not bool:
        return None
    try:
        if kind is bool:
            if v.lower() not in ("true", "false"):
                raise ValueError
            return v.lower() == "true"
        out = kind(v)
    except ValueError:
        raise ConfigError(f"{key}={value}: expected {'true or false' if kind is bool else kind.__name__}") from None
    if kind in (int, float) and out < 0 or (key in ("poll_s", "max_checkpoints") and out == 0):
        raise ConfigError(f"{key}={value}: must be a positive number")
    return out


main = watch_main  # the entry `evalkit.cli.COMMANDS` calls
