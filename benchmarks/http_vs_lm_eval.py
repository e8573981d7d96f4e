"""Side by side on one server: evalkit's HTTP backend vs lm-eval's ``local-completions`` on
GSM8K (same items, same 5 shared exemplars, greedy), against one server running the embedded
model, started here on a free port: ``transformers serve`` by default, or llama-cpp-python's
server with ``--llama-python`` (an interpreter that has ``llama-cpp-python[server]``; a source
build, see ``http_llama_cpp_loglik.py``). Prints both wall times, their ratio, and how many
items got the same text from both.

    python benchmarks/http_vs_lm_eval.py --limit 30 --data-root ../shared/data --concurrency 4
    python benchmarks/http_vs_lm_eval.py --limit 30 --data-root ../shared/data --llama-python /tmp/llvenv/bin/python
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lm_eval_bridge import task_config  # noqa: E402
from evalkit.config import data_root as resolve_root  # noqa: E402
from evalkit.files import read_jsonl  # noqa: E402
from evalkit.runner.run import run  # noqa: E402
from evalkit.tasks import build_samples, load_task  # noqa: E402
from tests.conftest import run_config  # noqa: E402
from tests.http_servers import LlamaCppServer, TransformersServer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--data-root", default="samples")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--out", default="/tmp/evalkit_http_vs_lm_eval")
    ap.add_argument("--llama-python", help="serve with llama-cpp-python from this interpreter instead")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    server = (LlamaCppServer(a.llama_python, out / "serve.log") if a.llama_python
              else TransformersServer(out / "serve.log"))
    server.start()
    try:
        cfg = run_config(out / "evalkit", f"data_root={a.data_root}", "model=openai_compatible",
                         f"model.base_url={server.base_url}", f"model.concurrency={a.concurrency}")
        cfg["suite"] = {"name": "gsm8k_http", "tasks": {"gsm8k": {"limit": a.limit}}}
        t0 = time.perf_counter()
        run_dir = run(cfg)
        evalkit_s = time.perf_counter() - t0

        import lm_eval

        from evalkit.tasks.data import load_docs
        from evalkit.tasks.fewshot import shared_exemplars

        spec = load_task("gsm8k", {"limit": a.limit})
        samples, _ = build_samples(spec, resolve_root(a.data_root), a.limit)
        fs = spec.fewshot
        pool = [{k: v for k, v in d.items() if not k.startswith("_") or k == "_index"}
                for d in load_docs(spec, fs["split"], resolve_root(a.data_root))]
        # evalkit's shared exemplars as lm-eval's first-n pool: both send the same prompts.
        fewshot = shared_exemplars(pool, fs["n"], fs["select"], fs["seed"]).get(samples[0].group)
        with tempfile.TemporaryDirectory() as tmp:
            tc = task_config("gsm8k", "", [s.doc for s in samples], fewshot, 5, "first_n", Path(tmp))
            t1 = time.perf_counter()
            res = lm_eval.simple_evaluate(
                model="local-completions",
                model_args=(f"model={server.model},base_url={server.base_url}/completions,"
                            f"num_concurrent={a.concurrency},tokenizer_backend=None,max_retries=3"),
                tasks=[tc], bootstrap_iters=0, verbosity="WARNING", log_samples=True)
            lm_eval_s = time.perf_counter() - t1
        ours = {r["id"]: r["outputs"][0] for r in read_jsonl(run_dir / "samples" / "gsm8k.jsonl")}
        theirs = {str(r["doc"]["id"]): r["resps"][0][0] for rows in res["samples"].values() for r in rows}
        same = sum(ours[k].strip() == theirs.get(k, "").strip() for k in ours)
        print(f"evalkit HTTP: {evalkit_s:.1f} s; lm-eval local-completions: {lm_eval_s:.1f} s; "
              f"ratio lm-eval/evalkit {lm_eval_s / evalkit_s:.2f}; same text {same}/{len(ours)}")
        for k in ours:
            if ours[k].strip() != theirs.get(k, "").strip():
                print(f"  differs {k}:\n    evalkit: {ours[k][:160]!r}\n    lm-eval: {theirs.get(k, '')[:160]!r}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
