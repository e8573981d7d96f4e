"""Log-likelihood over HTTP against a real CPU server: llama-cpp-python's OpenAI-compatible
server running the embedded GGUF, against the in-process backend on the same items.

llama-cpp-python (0.3.x) builds from source only (about an hour of C++ on 2 cores), so this
runs from ``benchmarks/`` and not in CI. Give it a Python that has it installed:

    python -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install 'llama-cpp-python[server]'
    python benchmarks/http_llama_cpp_loglik.py --llama-python /tmp/llvenv/bin/python \\
        --data-root ../shared/data --limit 25

Two server starts:

1. as shipped: SmolLM2's tokenizer adds no BOS token, and llama-cpp-python's ``echo`` path
   then pairs each prompt token with the logits *at* its own position instead of the one
   before (it assumes a leading BOS it can drop). evalkit's start-up probe must refuse the
   server with one line before any work; the script checks that it does.
2. with ``--kv_overrides tokenizer.ggml.add_bos_token=bool:true``: the server prepends BOS,
   the echo is aligned, and the in-process side runs with ``model.add_bos=true`` so both
   condition on the same tokens. Printed: per-item agreement of the predicted choice, the
   distribution of |delta log-likelihood| per (item, choice), and both wall times.

The embedded GGUF is Q4_1; the in-process weights are that file dequantised, but llama.cpp
multiplies Q4_1 weights by 8-bit-quantised activations, so small differences come from the
arithmetic. ``--gguf`` serves another file instead: an F32 export of the in-process folder
(llama.cpp's ``convert_hf_to_gguf.py <folder> --outtype f32``) leaves only what the HTTP path
itself changes (tokenisation of the joined text, float order).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.http_agreement import http_and_in_process  # noqa: E402
from evalkit.errors import EvalkitError  # noqa: E402
from evalkit.files import read_jsonl  # noqa: E402
from evalkit.runner.run import run  # noqa: E402
from tests.conftest import run_config  # noqa: E402
from tests.http_servers import LlamaCppServer  # noqa: E402

TASKS = ("arc_easy", "hellaswag")
BOS_OVERRIDE = "tokenizer.ggml.add_bos_token=bool:true"


def _samples(run_dir: Path, task: str) -> dict[str, dict]:
    return {r["id"]: r for r in read_jsonl(run_dir / "samples" / f"{task}.jsonl")}


def _quantiles(values: list[float]) -> str:
    v = sorted(values)
    q = statistics.quantiles(v, n=100, method="inclusive") if len(v) > 1 else v * 99
    return (f"median {statistics.median(v):.4f}, p90 {q[89]:.4f}, p99 {q[98]:.4f}, max {v[-1]:.4f}, "
            f"mean {statistics.fmean(v):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-python", required=True, help="a Python with llama-cpp-python[server] installed")
    ap.add_argument("--data-root", default="samples")
    ap.add_argument("--limit", type=int, default=25, help="items of ARC-e and of HellaSwag (0-shot)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--gguf", help="serve this GGUF instead of the embedded Q4_1 file")
    ap.add_argument("--out", default="/tmp/evalkit_http_llama_cpp")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    # 0-shot: llama-cpp-python post-processes echoed logprobs in Python (a full-vocabulary
    # sort per prompt token), so a 10-shot HellaSwag prompt (~750 tokens) costs about a minute.
    suite = {"name": "http_loglik", "tasks": {t: {"limit": a.limit, "fewshot": {"n": 0}} for t in TASKS}}
    common = [f"data_root={a.data_root}", "progress=false"]

    # 1. As shipped (no BOS): the probe must refuse before any work.
    server = LlamaCppServer(a.llama_python, out / "serve_nobos.log", logits_all=True, gguf=a.gguf)
    server.start()
    try:
        cfg = run_config(out / "http_nobos", *common, "model=openai_compatible", f"model.base_url={server.base_url}")
        cfg["suite"] = suite
        try:
            run(cfg)
            print("probe, server as shipped: ACCEPTED (unexpected: its echo log-probs are misaligned)")
        except EvalkitError as e:
            print(f"probe, server as shipped: refused before any work: {e}")
    finally:
        server.stop()

    # 2. BOS prepended on both sides.
    server = LlamaCppServer(a.llama_python, out / "serve_bos.log", logits_all=True, kv_overrides=(BOS_OVERRIDE,),
                            gguf=a.gguf)
    dirs, walls = http_and_in_process(server, out, suite, common, a.concurrency, ("model.add_bos=true",))

    all_deltas: list[float] = []
    for task in TASKS:
        http, local = _samples(dirs["http"], task), _samples(dirs["in-process"], task)
        same_pred = sum(http[k]["pred"] == local[k]["pred"] for k in http)
        deltas = [abs(x - y) for k in http for x, y in zip(http[k]["logprobs"], local[k]["logprobs"])]
        rel = [abs(x - y) / max(abs(y), 1e-9) for k in http for x, y in zip(http[k]["logprobs"], local[k]["logprobs"])]
        all_deltas += deltas
        res = {k: json.loads((d / "results.json").read_text(encoding="utf-8"))["tasks"][task] for k, d in dirs.items()}
        metrics = {k: {m: round(v["value"], 4) for m, v in r["metrics"].items()} for k, r in res.items()}
        print(f"{task}: same predicted choice {same_pred}/{len(http)}; "
              f"|delta loglik| over {len(deltas)} choices: {_quantiles(deltas)}; "
              f"relative: median {statistics.median(rel):.4%}")
        print(f"  metrics: {metrics}")
        for k in http:
            if http[k]["pred"] != local[k]["pred"]:
                gap = sorted(local[k]["logprobs"], reverse=True)
                print(f"  differs {k}: http {http[k]['pred']} vs in-process {local[k]['pred']} "
                      f"(in-process margin between its top two choices {gap[0] - gap[1]:.4f})")
    print(f"all: |delta loglik| {_quantiles(all_deltas)}")
    print(f"wall: http {walls['http']:.1f} s (concurrency {a.concurrency}); in-process {walls['in-process']:.1f} s")
    print(f"run folders: {dirs['http']} {dirs['in-process']}")


if __name__ == "__main__":
    main()
