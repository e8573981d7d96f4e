"""evalkit against lm-eval's HF backend, side by side: wall time, work done, memory.

    python benchmarks/speed_vs_lm_eval.py --data-root ../shared/data [--scale 0.25] [--only arc_easy,gsm8k]

Both tools run the embedded SmolLM2-135M-Instruct as the same float32 HF folder (the
materialised GGUF) on the same items with the same shot count; every measured run is a
fresh process (``speed_jobs.py``), so peak memory and timings are its own. Workloads:
ARC-e 0-shot (400 items), ARC-c 25-shot (20), MMLU 5-shot (3 subjects), and the generation
rows GSM8K 5-shot (100) and BBH 3-shot CoT (one item of each of the 27 tasks). HumanEval is
not compared: lm-eval's HumanEval metric loads its code-execution metric from the hub.

BBH prompts differ by design: lm-eval's BBH YAML ends each question with "Let's think step
by step.\n" and evalkit's with "Let's think step by step." (the BBH repository's prompt), so
the BBH row compares wall time on the same items and exemplars, not identical texts; both
stop at 512 new tokens (evalkit's cap; lm-eval's YAML allows 1,024).

Few-shot protocols are compared both ways:

* fixed exemplars (evalkit's default: one draw shared by every item): lm-eval gets those
  exemplars as a first-n pool, so both tools see identical prompts;
* per-item exemplars (lm-eval's default for ARC and GSM8K: a fresh random draw per item):
  evalkit with ``fewshot.shared=false`` reproduces lm-eval's draws, so prompts are again
  identical. evalkit per-item vs lm-eval is the gain from engineering alone; evalkit
  fixed vs evalkit per-item is the gain from sharing the exemplars.

Reported per run: wall time of the evaluation (model load excluded, reported apart),
token positions the model actually ran (padding included, counted by one forward hook
on each tool's model), tokens/s, the ratio to lm-eval, per-item prediction agreement on
items whose prompts are identical, and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from speed_report import print_profile, print_summary, print_workload  # noqa: E402

# lm-eval's batch size per task, from `--calibrate` on this 2-core box (1 thread, busy machine):
# ARC-e 60 items: 4 -> 157 s, 8 -> 77 s, 16 -> 113 s, 32 -> 95 s, 64 -> 102 s; GSM8K 16 items:
# 4 -> 544 s, 8 -> 736 s, 16 -> 458 s. The 25- and 5-shot log-likelihood tasks use 8 too
# (larger batches add GBs of full-vocabulary logits: batch x ~1,100 positions x 49,152 floats).
LM_EVAL_BATCH = {"arc_easy": 8, "arc_challenge": 8, "mmlu": 8, "gsm8k": 16, "bbh": 16}
MMLU_SUBJECTS = ["global_facts", "high_school_government_and_politics", "us_foreign_policy"]


@dataclass
class Workload:
    label: str
    task: str
    limit: int
    per_item: bool  # also compare with per-item exemplars (lm-eval's own protocol)
    groups: list[str] | None = None
    kind: str = "loglikelihood"
    unit: str = "items"  # what ``limit`` counts, for the printed header
    runs: dict[str, Any] = field(default_factory=dict)


def workloads(scale: float) -> list[Workload]:
    def n(x: int) -> int:
        return max(2, round(x * scale))

    return [
        Workload("ARC-e 0-shot", "arc_easy", n(400), per_item=False),
        Workload("ARC-c 25-shot", "arc_challenge", n(20), per_item=True),
        Workload("MMLU 5-shot", "mmlu", n(30), per_item=False, groups=MMLU_SUBJECTS),
        Workload("GSM8K 5-shot", "gsm8k", n(100), per_item=True, kind="generate"),
        Workload("BBH 3-shot CoT", "bbh", 1, per_item=False, kind="generate", unit="item of each of the 27 tasks"),
    ]


JOB_DEFAULTS: dict[str, Any] = {}


def run_job(job: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Run one job in a fresh process; adds its peak RSS (MiB) and process wall time."""
    job = {**JOB_DEFAULTS, **job}
    jf, rf = tmp / f"job_{time.monotonic_ns()}.json", tmp / f"res_{time.monotonic_ns()}.json"
    jf.write_text(json.dumps(job))
    t0 = time.perf_counter()
    env = {**os.environ, **job.get("env", {})}
    proc = subprocess.Popen([sys.executable, str(HERE / "speed_jobs.py"), str(jf), str(rf)], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"job {job['kind']} failed with status {proc.returncode}")
    res = json.loads(rf.read_text())
    res["peak_rss_mib"] = usage.ru_maxrss / 1024
    res["process_seconds"] = time.perf_counter() - t0
    return res


def lm_eval_groups(w: Workload, items: list[dict], data_root: str, per_item: bool) -> tuple[list[dict], int]:
    """lm-eval's input for the items evalkit evaluated: eval docs per group and their few-shot pool."""
    from evalkit.config import data_root as resolve_root
    from evalkit.tasks import load_task
    from evalkit.tasks.data import load_docs
    from evalkit.tasks.fewshot import by_group, shared_exemplars

    spec = load_task(w.task)
    fs = spec.fewshot
    docs: OrderedDict[str, list[dict]] = OrderedDict()
    for it in items:
        docs.setdefault(it["group"], []).append(it["doc"])
    if w.task == "bbh":
        # evalkit's BBH prompt embeds the task's 3 CoT exemplars; lm-eval's YAML holds the same three.
        return [{"task": w.task, "group": g, "docs": d, "fewshot": None} for g, d in docs.items()], 3
    pools: dict[str, list[dict]] = {}
    if fs["n"]:
        pool = load_docs(spec, fs["split"], resolve_root(data_root))
        clean = [{k: v for k, v in d.items() if not k.startswith("_") or k == "_index"} for d in pool]
        pools = dict(by_group(clean)) if per_item else shared_exemplars(clean, fs["n"], fs["select"], fs["seed"])
    return [{"task": w.task, "group": g, "docs": d, "fewshot": pools.get(g)} for g, d in docs.items()], fs["n"]


def calibrate(model_dir: str, data_root: str, tmp: Path, scale: float) -> None:
    """lm-eval's wall time per batch size on small slices of ARC-e (log-likelihood) and GSM8K (generation)."""
    from evalkit.config import data_root as resolve_root
    from evalkit.tasks import load_task
    from evalkit.tasks.data import load_docs

    for w, sizes in ((Workload("ARC-e 0-shot", "arc_easy", max(8, round(60 * scale)), False), [4, 8, 16, 32, 64]),
                     (Workload("GSM8K 5-shot", "gsm8k", max(4, round(16 * scale)), False, kind="generate"), [4, 8, 16])):
        docs = load_docs(load_task(w.task), "eval", resolve_root(data_root))[: w.limit]
        items = [{"group": str(d.get("group", "")), "doc": {k: v for k, v in d.items() if not k.startswith("_")}} for d in docs]
        groups, n_shot = lm_eval_groups(w, items, data_root, per_item=False)
        print(f"lm-eval batch-size calibration, {w.label}, {w.limit} items:")
        for bs in sizes:
            r = run_job({"kind": "lm_eval", "model_dir": model_dir, "groups": groups, "num_fewshot": n_shot,
                         "sampler": "first_n", "batch_size": bs}, tmp)
            print(f"  batch {bs:3d}: {r['wall_seconds']:7.1f} s, {r['positions']:,} positions, peak {r['peak_rss_mib']:.0f} MiB",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=str(HERE.parents[1] / "shared" / "data"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every item count (quick checks)")
    ap.add_argument("--only", help="comma-separated tasks (arc_easy,arc_challenge,mmlu,gsm8k,bbh)")
    ap.add_argument("--lm-eval-batch", type=json.loads, default=LM_EVAL_BATCH,
                    help='lm-eval batch size per task, JSON (default %(default)s)')
    ap.add_argument("--threads", default="auto",
                    help="torch threads for every job, both tools: a number, or auto = 1 when the load "
                         "average is at least the CPU count (oversubscribed OpenMP threads stall), else torch's default")
    ap.add_argument("--fixed-only", action="store_true", help="skip the per-item-exemplar runs (half the time)")
    ap.add_argument("--straightforward", action="store_true", help="also run evalkit's straightforward path")
    ap.add_argument("--profile", action="store_true", help="profile evalkit's default runs (extra runs, after)")
    ap.add_argument("--skip-load", action="store_true", help="skip the cold/warm model load measurement")
    ap.add_argument("--calibrate", action="store_true", help="only time lm-eval's batch sizes on small slices")
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args()

    from evalkit.backends.hf.loading import embedded_model_dir

    model_dir = str(embedded_model_dir())
    busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    threads = (1 if busy else 0) if args.threads == "auto" else int(args.threads)
    JOB_DEFAULTS["threads"] = threads
    print(f"torch threads per job: {threads or 'default'} (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)", flush=True)
    if args.calibrate:
        with tempfile.TemporaryDirectory(prefix="evalkit_speed_") as tmp_s:
            calibrate(model_dir, args.data_root, Path(tmp_s), args.scale)
        return
    load_before = os.getloadavg()
    started = time.perf_counter()
    report: dict[str, Any] = {"model_dir": model_dir, "load_avg_before": load_before, "cpus": os.cpu_count(),
                              "threads": threads}
    with tempfile.TemporaryDirectory(prefix="evalkit_speed_") as tmp_s:
        tmp = Path(tmp_s)
        report["raw"] = run_job({"kind": "raw", "model_dir": model_dir}, tmp)
        if not args.skip_load:
            cold_cache = tmp / "cold_cache"
            report["load_cold"] = run_job({"kind": "load", "env": {"EVALKIT_CACHE": str(cold_cache)}}, tmp)
            report["load_warm"] = run_job({"kind": "load", "env": {"EVALKIT_CACHE": str(cold_cache)}}, tmp)
        chosen = [w for w in workloads(args.scale) if not args.only or w.task in args.only.split(",")]
        for w in chosen:
            base = {"kind": "evalkit", "model_dir": model_dir, "data_root": args.data_root, "task": w.task}
            task_over: dict[str, Any] = {"limit": w.limit}
            if w.groups:
                task_over["groups"] = w.groups
            if args.fixed_only:
                w.per_item = False
            modes = [("fixed", False)] + ([("per-item", True)] if w.per_item else [])
            for mode, per_item in modes:
                over = {**task_over, **({"fewshot": {"shared": False}} if per_item else {})}
                job = {**base, "out_dir": str(tmp / f"{w.task}_{mode}"), "task_overrides": over}
                w.runs[f"evalkit {mode}"] = ek = run_job(job, tmp)
                if args.straightforward:
                    job = {**job, "out_dir": str(tmp / f"{w.task}_{mode}_sf"), "overrides": ["model.prefix_sharing=false"]}
                    w.runs[f"evalkit {mode}, straightforward"] = run_job(job, tmp)
                groups, n_shot = lm_eval_groups(w, ek["items"], args.data_root, per_item)
                sampler = "default" if per_item else "first_n"
                job = {"kind": "lm_eval", "model_dir": model_dir, "groups": groups, "num_fewshot": n_shot,
                       "sampler": sampler, "batch_size": args.lm_eval_batch[w.task]}
                w.runs[f"lm-eval {mode}"] = run_job(job, tmp)
            print_workload(w, report["raw"])
        if args.profile:
            for w in chosen:
                job = {"kind": "evalkit", "model_dir": model_dir, "data_root": args.data_root, "task": w.task,
                       "out_dir": str(tmp / f"{w.task}_profile"), "profile": True,
                       "task_overrides": {"limit": w.limit, **({"groups": w.groups} if w.groups else {})}}
                print_profile(w.label, run_job(job, tmp))
    report["load_avg_after"] = os.getloadavg()
    report["total_seconds"] = time.perf_counter() - started
    print_summary(chosen, report, {w.task: args.lm_eval_batch[w.task] for w in chosen})
    if args.json:
        report["workloads"] = {w.label: {k: {kk: vv for kk, vv in r.items() if kk != "items"} for k, r in w.runs.items()}
                               for w in chosen}
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
