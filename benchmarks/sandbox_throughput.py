"""Executed-program throughput of the code sandbox, and the reference-solution check.

Runs the reference solutions of HumanEval (164) and MBPP (500) through the code_exec judge,
the code path of model outputs (program assembly, sandbox, outcome classification), with
the run config's sandbox settings, under each isolation mechanism asked for, and prints
programs/s and how many passed (all 664 should; MBPP 123's reference needs about 2.6 s of
CPU, close to the 3 s limit, and can hit the 10 s wall limit on a heavily loaded machine).

    python benchmarks/sandbox_throughput.py --data-root ../shared/data --workers 2
    python benchmarks/sandbox_throughput.py --mechanisms bwrap,unshare --limit 100
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from evalkit.hydra_checks import compose_config
from evalkit.judges import run_judge
from evalkit.tasks import build_samples, load_task

REFERENCE = {"humaneval": "canonical_solution", "mbpp": "code"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--workers", type=int, default=None, help="parallel programs (default: one per core)")
    ap.add_argument("--mechanisms", default="auto", help="comma-separated: auto, bwrap, unshare, rlimits")
    ap.add_argument("--python", default=None, help="sandbox.python (rlimits as root needs a world-readable one)")
    ap.add_argument("--limit", type=int, default=None, help="first N problems of each task")
    args = ap.parse_args()
    tasks = {}
    for task, ref in REFERENCE.items():
        spec = load_task(task)
        samples, _ = build_samples(spec, Path(args.data_root), args.limit)
        tasks[task] = (spec.raw["judge"], [{"id": s.id, "doc": s.doc, "outputs": [s.doc[ref]]} for s in samples])
    for mech in args.mechanisms.split(","):
        overrides = ["sandbox.allow_code_execution=true", f"sandbox.isolation={mech}", "progress=false"]
        overrides += [f"sandbox.workers={args.workers}"] if args.workers else []
        overrides += [f"sandbox.python={args.python}"] if args.python else []
        run_cfg = compose_config(overrides)
        total, seconds = 0, 0.0
        for task, (judge_spec, records) in tasks.items():
            t0 = time.perf_counter()
            info = run_judge(judge_spec, records, run_cfg)
            dt = time.perf_counter() - t0
            total, seconds = total + len(records), seconds + dt
            outcomes = Counter(r["executions"][0]["outcome"] for r in records)
            failed = [f"{r['id']}:{e['outcome']}:{e['detail']}" for r in records for e in r["executions"] if e["outcome"] != "passed"]
            print(f"{info['sandbox']['mechanism']:8s} {task:10s} {len(records):4d} programs  {dt:6.1f} s  "
                  f"{len(records) / dt:6.1f} programs/s  on {info['workers']} workers  outcomes {dict(outcomes)}"
                  + (f"  not passed (id:outcome:detail): {failed}" if failed else ""))
        print(f"{mech:8s} all        {total:4d} programs  {seconds:6.1f} s  {total / seconds:6.1f} programs/s")


if __name__ == "__main__":
    main()
