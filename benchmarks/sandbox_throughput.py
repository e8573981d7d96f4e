"""Executed-program throughput of the code sandbox, and the reference-solution check.

Runs the reference solutions of HumanEval (164) and MBPP (500) through ``evalkit.sandbox``
exactly as the code_exec judge assembles them, under each isolation mechanism asked for,
and prints programs/s and how many passed (all 664 should; MBPP 123's reference needs about
2.6 s of CPU, close to the 3 s limit, and can fail on a heavily loaded machine).

    python benchmarks/sandbox_throughput.py --data-root ../shared/data --workers 2
    python benchmarks/sandbox_throughput.py --mechanisms bwrap,unshare --limit 100
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from evalkit.sandbox import SandboxSettings, choose, run_programs
from evalkit.tasks import build_samples, load_task
from evalkit.tasks.templating import render

REFERENCE = {"humaneval": "canonical_solution", "mbpp": "code"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--workers", type=int, default=None, help="parallel programs (default: one per core)")
    ap.add_argument("--mechanisms", default="auto", help="comma-separated: auto, bwrap, unshare, rlimits")
    ap.add_argument("--python", default=None, help="sandbox.python (rlimits as root needs a world-readable one)")
    ap.add_argument("--limit", type=int, default=None, help="first N problems of each task")
    args = ap.parse_args()
    programs: dict[str, list[str]] = {}
    for task, ref in REFERENCE.items():
        spec = load_task(task)
        samples, _ = build_samples(spec, Path(args.data_root), args.limit)
        programs[task] = [render(spec.raw["judge"]["program"], {**s.doc, "completion": s.doc[ref]}) for s in samples]
    for mech in args.mechanisms.split(","):
        settings = SandboxSettings.from_config({"allow_code_execution": True, "isolation": mech,
                                                "workers": args.workers, "python": args.python})
        iso = choose(settings)
        total, seconds = 0, 0.0
        for task, progs in programs.items():
            t0 = time.perf_counter()
            results, stats = run_programs(progs, settings, iso)
            dt = time.perf_counter() - t0
            total, seconds = total + len(progs), seconds + dt
            failed = [f"{i}:{r.outcome}:{r.detail}" for i, r in enumerate(results) if not r.passed]
            print(f"{iso.name:8s} {task:10s} {len(progs):4d} programs  {dt:6.1f} s  {len(progs) / dt:6.1f} programs/s  "
                  f"on {settings.workers} workers  outcomes {dict(Counter(r.outcome for r in results))}"
                  + (f"  not passed (index:outcome:detail): {failed}" if failed else ""))
        print(f"{iso.name:8s} all        {total:4d} programs  {seconds:6.1f} s  {total / seconds:6.1f} programs/s")


if __name__ == "__main__":
    main()
