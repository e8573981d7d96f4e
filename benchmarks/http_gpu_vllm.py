"""GPU check of the HTTP backend: start ``vllm serve`` with a model, run ARC-e (log-likelihood)
and GSM8K (greedy generation) through evalkit's HTTP backend and through the in-process HF
backend, and print per-item agreement, |delta log-likelihood| and throughput.

    python benchmarks/http_gpu_vllm.py --model HuggingFaceTB/SmolLM2-135M-Instruct --limit 200 \
        --data-root ../shared/data

Needs a CUDA machine with vllm installed (``pip install vllm``); prints one figure a line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evalkit.files import read_jsonl  # noqa: E402
from evalkit.runner.run import run  # noqa: E402
from tests.conftest import run_config  # noqa: E402
from tests.http_servers import free_port  # noqa: E402


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vllm serve exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/models", timeout=5)
            return
        except OSError:
            time.sleep(2)
    raise SystemExit("vllm serve did not come up")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--data-root", default="samples")
    ap.add_argument("--out", default="/tmp/evalkit_http_gpu")
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    port = free_port()
    proc = subprocess.Popen(["vllm", "serve", a.model, "--port", str(port), "--dtype", "float32",
                             "--max-logprobs", "5", "--enable-prefix-caching"])
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_up(base, proc)
        suite = {"name": "http_gpu", "tasks": {"arc_easy": {"limit": a.limit}, "gsm8k": {"limit": a.limit}}}
        dirs = {}
        for label, extra in [("http", ["model=openai_compatible", f"model.base_url={base}", f"model.tokenizer={a.model}",
                                       f"model.concurrency={a.concurrency}", "model.logprob_max_tokens=1"]),
                             ("inproc", ["model=hf", f"model.pretrained={a.model}", "model.device=cuda"])]:
            cfg = run_config(Path(a.out) / label, f"data_root={a.data_root}", *extra)
            cfg["suite"] = suite
            t0 = time.perf_counter()
            dirs[label] = run(cfg)
            print(f"{label}: wall {time.perf_counter() - t0:.1f} s")
        for task in suite["tasks"]:
            h = {r["id"]: r for r in read_jsonl(dirs["http"] / "samples" / f"{task}.jsonl")}
            i = {r["id"]: r for r in read_jsonl(dirs["inproc"] / "samples" / f"{task}.jsonl")}
            if task == "arc_easy":
                agree = sum(h[k]["pred"] == i[k]["pred"] for k in h)
                deltas = [abs(x - y) for k in h for x, y in zip(h[k]["logprobs"], i[k]["logprobs"])]
                q = statistics.quantiles(deltas, n=100)
                print(f"arc_easy: pred agreement {agree}/{len(h)}; |dloglik| median {q[49]:.4f} p95 {q[94]:.4f} max {max(deltas):.4f}")
            else:
                agree = sum(h[k]["outputs"] == i[k]["outputs"] for k in h)
                print(f"gsm8k: identical greedy outputs {agree}/{len(h)}")
        for label, d in dirs.items():
            res = json.loads((d / "results.json").read_text())
            print(label, "request seconds", res["timing"]["request_seconds"])
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    main()
