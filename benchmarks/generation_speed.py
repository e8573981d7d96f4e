"""Generation speed: batch-at-a-time vs continuous batching, against raw forward throughput.

    python benchmarks/generation_speed.py --data-root ../shared/data [--scale 0.1] [--only gsm8k,bbh]
        [--max-new 64] [--paths batch,continuous,draft] [--draft 4] [--threads 2] [--profile]

Paths: ``batch`` (batch at a time, ``model.continuous_batching=false``), ``continuous``
(continuous batching, no guessed tokens, ``model.draft_tokens=0``) and ``draft``
(continuous batching with ``--draft`` tokens guessed by prompt lookup per row and step).

Workloads (at ``--scale 1``): GSM8K 5-shot (100 items), BBH 3-shot CoT (one item of each
of the 27 tasks) and HumanEval (30 problems), built by evalkit's own planner from the
real data (``--max-new`` caps every request's new tokens, as ``max_gen_toks`` does). Each
(workload, path) runs in a fresh process with the embedded SmolLM2-135M-Instruct, so its
peak memory (``resource.getrusage``, model included) and timings are its own; right after
generating, the same process measures the raw forward throughput: a full-batch forward
(about 2,048 tokens, no cache, one logit row per sequence) over sequences as long as the
workload's prompts. Printed per row: wall time, generated tokens/s end to end, raw
forward tokens/s and their ratio; the decoding steps alone (their seconds, the tokens
they generated per second and its fraction of raw forward throughput, positions run and
tokens generated per step: with guessed tokens a step runs several positions per row and
yields one to ``--draft + 1`` tokens per row) apart from the prefixes and prompt
prefills; the *floor* (a step of as many positions that attends to nothing: weights and
output layer only, the most a decoding step of that size can run on the machine);
peak memory, and whether every path generated the same texts. On a shared machine use
``--threads 1``: two threads on two busy cores spin-wait and run 10-20x slower.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # name -> (label, task, limit at scale 1, per group)
    "gsm8k": ("GSM8K 5-shot", "gsm8k", 100, False),
    "bbh": ("BBH 3-shot CoT", "bbh", 1, True),
    "humaneval": ("HumanEval", "humaneval", 30, False),
}


def task_plans(task: str, limit: int, data_root: Path, max_new: int | None) -> list[Any]:
    """The workload's task plan (samples; requests are filled by ``plan_requests``)."""
    from evalkit.runner.plan import build_task_plans
    from evalkit.tasks import load_task

    overrides = {"generation": {"max_new_tokens": max_new}} if max_new else {}
    return build_task_plans([load_task(task, overrides)], data_root, limit)


def job(args: dict[str, Any]) -> dict[str, Any]:
    """One measured run of ``kind`` (a path: ``batch`` or ``continuous``) in this process."""
    import torch

    from evalkit.backends.hf.backend import HFBackend
    from evalkit.backends.hf.loading import EMBEDDED_SMOLLM2
    from evalkit.runner.plan import plan_requests
    from evalkit.runner.prompting import ChatSettings

    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    backend = HFBackend(EMBEDDED_SMOLLM2)
    plans = task_plans(args["task"], args["limit"], Path(args["data_root"]), args.get("max_new"))
    plan = plan_requests(plans, ChatSettings(False, True), backend, 1234)
    reqs = list(plan.unique.values())
    lengths = [len(backend.encoder.encode(r.context)) for r in reqs]
    backend.continuous_batching = args["kind"] in ("continuous", "draft")
    backend.draft_tokens = int(args["draft"]) if args["kind"] == "draft" else 0
    rows_total = sum(r.n for r in reqs)
    stats = backend.stats
    f0, c0, g0 = stats.forward_tokens, stats.forward_calls, stats.generated_tokens
    phases = timed_phases(backend.engine)
    t0 = time.perf_counter()
    if args.get("profile"):
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = dict(backend.generate(reqs))
        wall = time.perf_counter() - t0  # the table below takes minutes to build
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    else:
        out = dict(backend.generate(reqs))
        wall = time.perf_counter() - t0
        table = None
    # Raw throughput in the same process, right after: a shared machine's load changes by the minute.
    mean_len = sum(lengths) / len(lengths)
    backend.engine.forward = phases.pop("forward")
    rows = phases["decode_tokens"] / max(1, phases["decode_calls"])
    # Every row's first token comes from its prefill; the decoding steps generated the rest.
    phases["decode_generated"] = stats.generated_tokens - g0 - rows_total
    return {"raw_tokens_per_second": raw_throughput(backend, int(mean_len)), "mean_prompt_tokens": mean_len,
        "floor_tokens_per_second": floor_throughput(backend, max(1, round(rows))), **phases,
        "wall_seconds": wall, "requests": len(reqs), "generated_tokens": stats.generated_tokens - g0,
        "forward_tokens": stats.forward_tokens - f0, "forward_calls": stats.forward_calls - c0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "texts": [list(out[i].texts) for i in range(len(reqs))], "profile": table,
    }


def timed_phases(engine: Any) -> dict[str, Any]:
    """Time ``engine``'s forward calls from now on: decoding steps apart from the rest
    (prefixes, prefills); the dict holds the sums (tokens: positions run) and the original
    forward."""
    phases: dict[str, Any] = {"forward": engine.forward, "decode_seconds": 0.0, "decode_calls": 0,
                              "decode_tokens": 0, "other_seconds": 0.0, "other_tokens": 0}
    real = engine.forward

    def forward(input_ids: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        out = real(input_ids, **kw)
        layers = getattr(kw.get("cache"), "layers", None) or [None]
        slots = getattr(layers[0], "owner", None)  # a continuous-batching call's SlotCache
        decoding = not slots.prefilling if slots is not None else input_ids.shape[1] == 1
        kind = "decode" if decoding else "other"
        phases[f"{kind}_seconds"] += time.perf_counter() - t0
        phases[f"{kind}_tokens"] += kw["n_tokens"]
        phases["decode_calls"] += kind == "decode"
        return out

    engine.forward = forward
    return phases


def floor_throughput(backend: Any, rows: int, reps: int = 3) -> float:
    """Tokens/s of a decoding step of ``rows`` rows that attends to nothing but itself (no
    cache): the weights and output layer alone, the most any decoding step of that many
    rows can reach on this machine."""
    import torch

    ids = torch.randint(100, 40000, (rows, 1))
    pos = torch.zeros((rows, 1), dtype=torch.long)
    engine = backend.engine
    engine.forward(ids, n_tokens=0, position_ids=pos, keep_last=1)  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        engine.forward(ids, n_tokens=0, position_ids=pos, keep_last=1)
        best = min(best, time.perf_counter() - t0)
    return rows / best


def raw_throughput(backend: Any, length: int, budget: int = 2048, reps: int = 3) -> float:
    """Tokens/s of a full-batch forward over ``budget // length`` sequences of ``length`` tokens."""
    import torch

    length = max(8, min(length, budget))
    rows = max(1, budget // length)
    ids = torch.randint(100, 40000, (rows, length))
    pos = torch.arange(length)[None].expand(rows, -1)
    engine = backend.engine
    engine.forward(ids[:, :16], n_tokens=0, position_ids=pos[:, :16], keep_last=1)  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        engine.forward(ids, n_tokens=ids.numel(), position_ids=pos, keep_last=1)
        best = min(best, time.perf_counter() - t0)
    return ids.numel() / best


def run_child(spec: dict[str, Any], tmp: Path, script: str = __file__) -> dict[str, Any]:
    """``script --job`` on ``spec`` in a fresh process (its own peak memory and timings);
    its result. A failed job ends the benchmark with one line: the job's last error line."""
    job_file, out_file = tmp / "job.json", tmp / "out.json"
    job_file.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, script, "--job", str(job_file), str(out_file)], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        name = spec.get("kind") or spec.get("side")
        sys.exit(f"{Path(script).name}: job {name} failed (exit {proc.returncode}): "
                 f"{lines[-1] if lines else 'no error output'}")
    return json.loads(out_file.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=os.environ.get("EVALKIT_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--scale", type=float, default=0.1, help="fraction of each workload's items (1 = the issue's sizes)")
    ap.add_argument("--only", default=",".join(WORKLOADS))
    ap.add_argument("--max-new", type=int, default=None, help="cap on new tokens per request")
    ap.add_argument("--paths", default="batch,continuous,draft")
    ap.add_argument("--draft", type=int, default=4, help="tokens guessed per row and step on the draft path")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--profile", action="store_true", help="print a torch profile of each path")
    ap.add_argument("--job", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.job:
        Path(a.job[1]).write_text(json.dumps(job(json.loads(Path(a.job[0]).read_text()))))
        return
    print(f"generation speed: scale={a.scale} max_new={a.max_new} threads={a.threads or 'default'}")
    with tempfile.TemporaryDirectory(prefix="genspeed-") as tmp:
        for name in a.only.split(","):
            label, task, limit, per_group = WORKLOADS[name]
            n = limit if per_group else max(2, round(limit * a.scale))
            base = {"task": task, "limit": n, "data_root": a.data_root, "max_new": a.max_new, "threads": a.threads,
                    "draft": a.draft}
            runs = {p: run_child({**base, "kind": p, "profile": a.profile}, Path(tmp)) for p in a.paths.split(",")}
            report(label, n, runs)


def texts_hash(texts: list[list[str]]) -> str:
    """A short hash of every generated text, to compare runs of two checkouts or settings."""
    import hashlib

    return hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:12]


def report(label: str, n: int, runs: dict[str, dict[str, Any]]) -> None:
    first = next(iter(runs.values()))
    print(f"\n== {label}: {first['requests']} requests ({n} per group/task), mean prompt "
          f"{first['mean_prompt_tokens']:.0f} tokens")
    print(f"{'path':<12}{'wall s':>8}{'gen tok':>8}{'gen tok/s':>10}{'raw tok/s':>10}{'gen/raw':>8}"
          f"{'decode s':>9}{'steps':>6}{'dec tok/s':>10}{'dec/raw':>8}{'pos/step':>9}{'tok/step':>9}"
          f"{'floor/raw':>10}{'other s':>8}{'peak MiB':>9}")
    for path, r in runs.items():
        gen_rate = r["generated_tokens"] / r["wall_seconds"]
        raw = r["raw_tokens_per_second"]
        dec_rate = r["decode_generated"] / max(r["decode_seconds"], 1e-9)
        steps = max(1, r["decode_calls"])
        print(f"{path:<12}{r['wall_seconds']:>8.1f}{r['generated_tokens']:>8}{gen_rate:>10.1f}{raw:>10.0f}"
              f"{gen_rate / raw:>8.0%}{r['decode_seconds']:>9.1f}{r['decode_calls']:>6}{dec_rate:>10.1f}"
              f"{dec_rate / raw:>8.0%}{r['decode_tokens'] / steps:>9.1f}{r['decode_generated'] / steps:>9.1f}"
              f"{r['floor_tokens_per_second'] / raw:>10.0%}{r['other_seconds']:>8.1f}{r['peak_rss_mib']:>9.0f}")
    print("(dec: decoding steps only, tokens they generated; pos: positions run; other: prefixes and prompt "
          "prefills; floor: a step of as many positions attending to nothing, the most a decoding step of that "
          "size runs here)")
    texts = [r["texts"] for r in runs.values()]
    same = sum(all(t[i] == texts[0][i] for t in texts) for i in range(len(texts[0])))
    print(f"identical texts across paths: {same}/{len(texts[0])}; texts hash "
          + ", ".join(f"{path} {texts_hash(r['texts'])}" for path, r in runs.items()))
    if len(runs) > 1:
        walls = [r["wall_seconds"] for r in runs.values()]
        print(f"speed-up {list(runs)[-1]} vs {list(runs)[0]}: {walls[0] / walls[-1]:.2f}x")
    for path, r in runs.items():
        if r.get("profile"):
            print(f"\n-- profile, {path}\n{r['profile']}")


if __name__ == "__main__":
    main()
