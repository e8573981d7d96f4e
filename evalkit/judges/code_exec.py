"""Judge ``code_exec``: run each generated program against its tests in the sandbox.

A task gives the program as a template over the document's fields plus ``completion``
(one generated text), e.g. HumanEval's ``{{ prompt }}{{ completion }}\\n{{ test }}\\n
check({{ entry_point }})``. Every sample of every record becomes one program; all run in
parallel in ``evalkit.sandbox``, and each record gets ``executions``: per sample, the
program, its outcome (passed / failed / exited_early / timeout / crashed / killed_for_limit
/ error), a detail (exception type, limit hit) and the tail of its stderr. Metrics
(``pass_at_k``) read them. A sample that cannot be built or run (its template fails on
this item's fields, the sandbox fails on it) is recorded as ``error`` with the message on
that item, and the run goes on.

Running model-written code is opt-in: without ``sandbox.allow_code_execution=true`` the
preflight stops the run before the model is loaded.
"""

from __future__ import annotations

import logging
from typing import Any

from evalkit.errors import ConfigError
from evalkit.judges import Record, judge
from evalkit.sandbox import FLAG, SandboxSettings, choose, run_programs
from evalkit.tasks.templating import TemplateError, check_syntax, render

log = logging.getLogger("evalkit")


def _settings(run_cfg: dict[str, Any]) -> SandboxSettings:
    return SandboxSettings.from_config(run_cfg.get("sandbox"))


def preflight(args: dict[str, Any], run_cfg: dict[str, Any]) -> None:
    """Refuse early when execution is not enabled, the settings are wrong or no sandbox works."""
    program = args.get("program")
    if not isinstance(program, str):
        raise ConfigError("judge code_exec needs 'program': a template of the program to run (fields + completion)")
    try:
        check_syntax(program, expression=False)
    except TemplateError as e:
        raise ConfigError(f"judge code_exec: program template: {e}") from None
    settings = _settings(run_cfg)
    if not settings.allow_code_execution:
        raise ConfigError(f"this suite runs code written by the model (judge code_exec); set {FLAG}=true to "
                          "allow it (programs run sandboxed: no network, no home or project, hard limits)")
    choose(settings)  # probes the isolation now, so a broken sandbox fails before generation


def programs(records: list[Record], template: str) -> list[str | TemplateError]:
    """Every sample's program, record by record and sample by sample: the task's program
    template rendered over the record's document plus ``completion`` (one output), or the
    error that rendering it on that item raised."""
    out: list[str | TemplateError] = []
    for r in records:
        for text in r["outputs"]:
            try:
                out.append(render(template, {**r["doc"], "completion": text}))
            except TemplateError as e:
                out.append(e)
    return out


def _template_error(e: TemplateError) -> dict[str, Any]:
    return {"program": None, "outcome": "error", "detail": f"program template failed on this item: {e}",
            "stderr": "", "seconds": 0.0, "returncode": None}


@judge("code_exec", preflight=preflight)
def code_exec(records: list[Record], args: dict[str, Any], run_cfg: dict[str, Any]) -> dict[str, Any]:
    """Execute every sample's program; write ``record["executions"]``; return sandbox facts and throughput."""
    preflight(args, run_cfg)
    settings = _settings(run_cfg)
    iso = choose(settings)
    progs = programs(records, args["program"])
    runnable = [p for p in progs if isinstance(p, str)]
    results, stats = run_programs(runnable, settings, iso, progress=bool(run_cfg.get("progress", True)))
    ran = iter(results)
    execs = iter([{"program": p, **next(ran).to_dict()} if isinstance(p, str) else _template_error(p) for p in progs])
    for r in records:
        r["executions"] = [next(execs) for _ in r["outputs"]]
    if len(runnable) < len(progs):
        stats["outcomes"]["error"] = stats["outcomes"].get("error", 0) + len(progs) - len(runnable)
        log.warning("code_exec: %d program(s) could not be built from the template; recorded as 'error' on their "
                    "items", len(progs) - len(runnable))
    log.info("code_exec: %d programs (%d unique) in %.1f s, %.1f programs/s on %d workers, isolation %s: %s",
             stats["programs"], stats["unique_programs"], stats["seconds"], stats["programs_per_second"] or 0,
             stats["workers"], iso.name, stats["outcomes"])
    return {"name": "code_exec", "sandbox": iso.describe(settings), **stats}
