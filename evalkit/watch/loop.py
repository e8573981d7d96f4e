"""``evalkit watch``: evaluate each new checkpoint of a training run as it appears.

Per checkpoint (in step order, once it is completely written): the suite is run on it
into a normal run folder (``<output_dir>/<checkpoint>__<suite>__<hash>``, resumable), then
compared with the baseline and with the previous checkpoint through ``evalkit.compare``;
the trend report, the gate summaries and the watch state are rewritten, and the run is
logged to the tracker. A checkpoint that fails the gate against the baseline is marked,
and with ``stop_on_regression`` the watch ends with exit status 1.

Everything the watch knows lives in its folder (``<output_dir>/watch__<ckpt dir>__<suite>``):
``watch.json`` (per checkpoint: step, run folder, verdicts), ``trend.html`` and
``<checkpoint>/vs_baseline.md``, ``vs_previous.md``, ``comparison.json``, ``junit.xml``.
Restarting the same command reads it back and carries on with the next checkpoint.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.compare.gate import load_gate, no_gate
from evalkit.compare.outputs import markdown_summary, write_json, write_junit
from evalkit.errors import ConfigError
from evalkit.files import atomic_write_json, atomic_write_text, read_json
from evalkit.paths import CONF_DIR
from evalkit.rundir import RESULTS, load_results
from evalkit.watch.checkpoints import Checkpoint, CheckpointScanner
from evalkit.watch.trend import TrendPoint, compare_series, is_regression, verdict, write_trend

log = logging.getLogger("evalkit")
STATE = "watch.json"


@dataclass
class WatchSettings:
    """What ``evalkit watch`` was asked to do (see ``evalkit.cli.watch``)."""

    ckpt_dir: Path
    run_overrides: list[str] = field(default_factory=list)  # suite=, data_root=, limit=, model.dtype=, tracking=...
    gate_overrides: list[str] = field(default_factory=list)  # gate=NAME, gate.KEY=VALUE
    baseline: str | None = None  # a finished run folder, or a model (folder, hub id, conf/model name)
    stop_on_regression: bool = False
    poll_s: float = 30.0
    settle_s: float = 60.0  # a checkpoint untouched this long counts as written even across one poll
    idle_exit_s: float | None = None  # end after this long without a new checkpoint (None: watch forever)
    max_checkpoints: int | None = None  # end after evaluating this many (in this session)
    marker: str | None = None  # file a trainer writes last; when set, only folders holding it are evaluated


def watch(s: WatchSettings) -> int:
    """Watch ``s.ckpt_dir`` until idle, ``max_checkpoints`` or a regression (with
    ``stop_on_regression``: returns 1); returns 0 otherwise."""
    from evalkit.hydra_checks import check_overrides, compose_config

    if not s.ckpt_dir.is_dir():
        raise ConfigError(f"{s.ckpt_dir}: no such checkpoint folder (give the folder the trainer writes checkpoint-* into)")
    gate = load_gate(s.gate_overrides) or no_gate()
    check_overrides(_checkpoint_overrides(s.run_overrides, s.ckpt_dir, "check"))
    base_cfg = compose_config(s.run_overrides)
    wdir = Path(base_cfg["output_dir"]).expanduser() / f"watch__{_slug(s.ckpt_dir.resolve().name)}__{_slug(base_cfg['suite']['name'])}"
    state = _load_state(wdir)
    baseline = None
    if s.baseline:
        known = state.get("baseline") or {}
        # A restart reuses the baseline's finished run instead of loading its model again.
        if known.get("given") == s.baseline and (Path(known.get("run_dir", "")) / RESULTS).is_file():
            baseline = load_results(known["run_dir"])
        else:
            baseline = load_results(_baseline_run(s, base_cfg))
            state["baseline"] = {"given": s.baseline, "run_dir": baseline["run_dir"]}
    points: list[TrendPoint] = []
    for entry in state["checkpoints"].values():
        if (Path(entry["run_dir"]) / RESULTS).is_file():
            points.append(TrendPoint(load_results(entry["run_dir"]), entry["step"], entry["name"]))
    points.sort(key=lambda p: p.step)
    compare_series(baseline, points, gate)
    done = {p.label for p in points}
    if points:
        print(f"watch: resuming; {len(points)} checkpoint(s) already evaluated in {wdir}", file=sys.stderr)
    scanner = CheckpointScanner(s.ckpt_dir, marker=s.marker, settle_s=s.settle_s)
    evaluated, last_new = 0, time.monotonic()
    while True:
        for ckpt in [c for c in scanner.ready() if c.name not in done]:
            point = _evaluate(s, ckpt, wdir, baseline, gate, points)
            done.add(ckpt.name)
            evaluated += 1
            last_new = time.monotonic()
            _record(wdir, state, point, baseline, points, gate)
            if is_regression(point.vs_base) and s.stop_on_regression:
                print(f"watch: stopping: {ckpt.name} regressed against the baseline (stop_on_regression)", file=sys.stderr)
                return 1
            if s.max_checkpoints is not None and evaluated >= s.max_checkpoints:
                print(f"watch: evaluated {evaluated} checkpoint(s) (max_checkpoints); trend: {wdir / 'trend.html'}", file=sys.stderr)
                return 0
        if s.idle_exit_s is not None and time.monotonic() - last_new >= s.idle_exit_s:
            print(f"watch: no new checkpoint for {s.idle_exit_s:g} s; trend: {wdir / 'trend.html'}", file=sys.stderr)
            return 0
        time.sleep(s.poll_s)


def _evaluate(s: WatchSettings, ckpt: Checkpoint, wdir: Path, baseline: dict[str, Any] | None, gate: Any,
              points: list[TrendPoint]) -> TrendPoint:
    from evalkit.hydra_checks import compose_config
    from evalkit.report.build import write_report
    from evalkit.runner.run import run
    from evalkit.tracking import track_run

    print(f"watch: step {ckpt.step}: evaluating {ckpt.path}", file=sys.stderr)
    cfg = compose_config(_checkpoint_overrides(s.run_overrides, ckpt.path, ckpt.name))
    run_dir = run(cfg)
    if cfg.get("report", True):
        write_report([run_dir], run_dir / "card.html")
    point = TrendPoint(load_results(run_dir), ckpt.step, ckpt.name)
    points.append(point)
    points.sort(key=lambda p: p.step)
    i = points.index(point)
    if i + 1 < len(points):  # an older step arrived late: its successor's "previous" changed
        points[i + 1].vs_prev = None
    compare_series(baseline, points, gate)
    summary = _write_gate_outputs(wdir / ckpt.name, point)
    track_run(cfg, run_dir, step=ckpt.step, gate_summary=summary)
    return point


def _write_gate_outputs(folder: Path, p: TrendPoint) -> str:
    """``vs_baseline.md``, ``vs_previous.md``, ``comparison.json``, ``junit.xml``; returns the
    Markdown (the tracker's gate summary)."""
    comps = [c for c in (p.vs_base, p.vs_prev) if c is not None]
    if not comps:
        return ""
    parts = []
    for name, comp in (("vs_baseline.md", p.vs_base), ("vs_previous.md", p.vs_prev)):
        if comp is not None:
            text = markdown_summary([comp])
            atomic_write_text(folder / name, text)
            parts.append(text)
    write_json(comps, folder / "comparison.json")
    if comps[0].gate.enforced:
        write_junit(comps[:1], folder / "junit.xml")  # the release decision: against the baseline
    return "\n\n".join(parts)


def _record(wdir: Path, state: dict[str, Any], point: TrendPoint, baseline: dict[str, Any] | None,
            points: list[TrendPoint], gate: Any) -> None:
    vb, vp = verdict(point.vs_base), verdict(point.vs_prev)
    state["checkpoints"][point.label] = {
        "name": point.label, "step": point.step, "path": point.results["model"].get("pretrained"),
        "run_dir": point.results["run_dir"], "vs_baseline": vb, "vs_previous": vp,
        "blocking": [r.name for r in point.vs_base.failed] if point.vs_base else [],
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_json(wdir / STATE, state)
    trend = write_trend(wdir / "trend.html", baseline, points, gate, title=f"Checkpoint trend: {wdir.name}")
    blocking = ", ".join(state["checkpoints"][point.label]["blocking"])
    print(f"step {point.step} {point.label}: vs baseline {vb.upper() or '-'}{f' ({blocking})' if blocking else ''}; "
          f"vs previous {vp.upper() or '-'}; trend: {trend}")


def _baseline_run(s: WatchSettings, base_cfg: dict[str, Any]) -> Path:
    """The baseline's run folder: given as one, or made by running the suite on the model."""
    from evalkit.hydra_checks import compose_config
    from evalkit.runner.run import run

    value = str(s.baseline)
    path = Path(value).expanduser()
    if (path / RESULTS).is_file():
        return path
    if (path / "config.yaml").is_file() and not (path / "config.json").is_file():
        raise ConfigError(f"baseline={value}: run folder is not finished (no {RESULTS}); rerun its command first")
    if (CONF_DIR / "model" / f"{value}.yaml").is_file():
        model = [f"model={value}"]
    elif path.exists() or "/" in value or value.startswith("embedded:"):
        model = ["model=hf", f"model.pretrained={path.resolve() if path.exists() else value}",
                 f"model.name=baseline-{_slug(path.name or value)}"]
    else:
        names = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
        raise ConfigError(f"baseline={value}: not a finished run folder, a model folder, a hub id or a model config "
                          f"(conf/model: {', '.join(names)})")
    keep = [o for o in s.run_overrides if not re.match(r"^[+~]*model[.=]", o) or re.match(r"^model\.(dtype|device|batch_size|max_batch_tokens|threads|prefix_sharing|continuous_batching|draft_tokens|chat_template|add_bos|max_length)=", o)]
    print(f"watch: baseline: running the suite on {value}", file=sys.stderr)
    return run(compose_config([*model, *keep]))


def _checkpoint_overrides(run_overrides: list[str], path: Path, name: str) -> list[str]:
    """The run overrides for one checkpoint: any HF folder, named after the checkpoint."""
    rest = [o for o in run_overrides if not re.match(r"^[+~]*model=", o)]
    return ["model=hf", *rest, f"model.pretrained={Path(path).resolve()}", f"model.name={name}"]


def _load_state(wdir: Path) -> dict[str, Any]:
    path = wdir / STATE
    state = read_json(path) if path.is_file() else {}
    state.setdefault("checkpoints", {})
    return state


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "x"
