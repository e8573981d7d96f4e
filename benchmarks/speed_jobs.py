"""One measured job of the speed benchmark, run in its own process.

    python benchmarks/speed_jobs.py job.json result.json

A job is ``{"kind": "evalkit" | "lm_eval" | "raw" | "load", ...}``. Each runs in a fresh
process so its peak memory (read by the parent with ``os.wait4``) and its timings are
its own. Every forward pass of the model is counted by a pre-hook on the model (the
token positions it ran, padding included), the same way for both tools.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (less sensitive to a busy machine than wall time)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class ForwardCounter:
    """Counts token positions and calls of every forward pass of a model."""

    def __init__(self) -> None:
        self.positions = 0
        self.calls = 0

    def attach(self, model: Any) -> None:
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module: Any, args: tuple, kwargs: dict) -> None:
        ids = args[0] if args else kwargs.get("input_ids")
        if ids is not None:
            self.positions += int(ids.numel())
            self.calls += 1


def job_evalkit(job: dict[str, Any]) -> dict[str, Any]:
    from evalkit.backends.registry import build_backend
    from evalkit.files import read_jsonl
    from evalkit.hydra_checks import compose_config
    from evalkit.runner.run import run

    cfg = compose_config([
        "model=hf", f"model.pretrained={job['model_dir']}", "model.name=smollm2-135m-instruct",
        f"model.dtype={job.get('dtype', 'float32')}", f"data_root={job['data_root']}",
        f"output_dir={job['out_dir']}", "report=false", "progress=false", *job.get("overrides", []),
    ])
    cfg["suite"] = {"name": f"speed_{job['task']}", "tasks": {job["task"]: job.get("task_overrides", {})}}
    backend = build_backend(cfg["model"])
    counter = ForwardCounter()
    counter.attach(backend.model)
    profile = None
    t0, c0 = time.perf_counter(), cpu_seconds()
    if job.get("profile"):
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            run_dir = run(cfg, backend=backend)
        wall = time.perf_counter() - t0
        ops = prof.key_averages()
        op_total = sum(e.self_cpu_time_total for e in ops) / 1e6
        profile = (ops.table(sort_by="self_cpu_time_total", row_limit=14)
                   + f"\ntorch ops: {op_total:.1f} s of {wall:.1f} s wall (the rest is Python: planning, "
                   "tokenising, request building, scoring)")
    else:
        run_dir = run(cfg, backend=backend)
        wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    res = json.loads((run_dir / "results.json").read_text())
    records = read_jsonl(run_dir / "samples" / f"{job['task']}.jsonl")
    items = []
    for r in records:
        item = {"id": r["id"], "group": r["group"], "prompt": r["prompt"], "doc": r["doc"]}
        if "logprobs" in r:
            item.update(pred=r["pred"], logprobs=r["logprobs"])
        else:
            ext = r["extracted"][0]
            item.update(output=r["outputs"][0], pred=ext.get("flexible", next(iter(ext.values()), None)))
        items.append(item)
    tr = res["tasks"][job["task"]]
    return {
        "wall_seconds": wall, "cpu_seconds": cpu, "load_seconds": backend.stats.load_seconds, "positions": counter.positions,
        "calls": counter.calls, "tokens": res["tokens"], "items": items,
        "metrics": {k: m["value"] for k, m in tr["metrics"].items()}, "fewshot_ids": tr["fewshot"]["ids"],
        "profile": profile,
    }


def job_lm_eval(job: dict[str, Any]) -> dict[str, Any]:
    from lm_eval.models.huggingface import HFLM
    from lm_eval_bridge import run_lm_eval

    counter = ForwardCounter()
    init = HFLM.__init__

    def counted_init(self: Any, *a: Any, **k: Any) -> None:
        init(self, *a, **k)
        counter.attach(self.model)

    HFLM.__init__ = counted_init  # type: ignore[method-assign]
    import lm_eval

    evaluate = lm_eval.simple_evaluate
    cpu: dict[str, float] = {}

    def timed_evaluate(*a: Any, **k: Any) -> Any:
        c0 = cpu_seconds()
        try:
            return evaluate(*a, **k)
        finally:
            cpu["seconds"] = cpu_seconds() - c0

    lm_eval.simple_evaluate = timed_evaluate
    groups = [(g["task"], g["group"], g["docs"], g["fewshot"]) for g in job["groups"]]
    out = run_lm_eval(groups, model_path=job["model_dir"], num_fewshot=job["num_fewshot"], sampler=job["sampler"],
                      batch_size=job["batch_size"], dtype=job.get("dtype", "float32"))
    items = []
    for it in out.items:
        item = {"id": it.id, "group": it.group, "prompt": it.prompt}
        if it.logprobs is not None:
            item.update(pred=it.pred, logprobs=it.logprobs)
        else:
            pred = it.scores.get("output,flexible-extract", it.scores.get("output,get-answer"))
            item.update(output=getattr(it, "raw_output", None), pred=pred)
        items.append(item)
    return {"wall_seconds": out.wall_seconds, "cpu_seconds": cpu["seconds"], "load_seconds": out.load_seconds,
            "positions": counter.positions,
            "calls": counter.calls, "items": items, "batch_size": out.batch_size}


def job_raw(job: dict[str, Any]) -> dict[str, Any]:
    """The model's plain forward throughput: the best of a few batch shapes, one logit row each."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=getattr(torch, job.get("dtype", "float32")))
    model.eval()
    best: dict[str, Any] = {}
    with torch.inference_mode():
        for b, t in job.get("shapes", [[8, 128], [4, 256], [1, 512]]):
            ids = torch.randint(100, 40000, (b, t))
            model(ids[:, :16], logits_to_keep=1)  # warm-up
            times = []
            for _ in range(job.get("reps", 3)):
                t0 = time.perf_counter()
                model(ids, logits_to_keep=1, use_cache=False)
                times.append(time.perf_counter() - t0)
            rate = b * t / min(times)
            if rate > best.get("tokens_per_second", 0):
                best = {"tokens_per_second": rate, "shape": [b, t]}
    return best


def job_load(job: dict[str, Any]) -> dict[str, Any]:
    """Load the embedded model through evalkit (cold when ``EVALKIT_CACHE`` is empty)."""
    from evalkit.backends.hf.backend import HFBackend
    from evalkit.backends.hf.loading import EMBEDDED_SMOLLM2

    t0 = time.perf_counter()
    backend = HFBackend(EMBEDDED_SMOLLM2)
    return {"load_seconds": backend.stats.load_seconds, "total_seconds": time.perf_counter() - t0}


JOBS = {"evalkit": job_evalkit, "lm_eval": job_lm_eval, "raw": job_raw, "load": job_load}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    if job.get("threads"):
        import torch

        torch.set_num_threads(int(job["threads"]))
    result = JOBS[job["kind"]](job)
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
