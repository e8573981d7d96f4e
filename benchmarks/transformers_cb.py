"""evalkit's continuous batching against transformers' own (``model.generate_batch``).

    python benchmarks/transformers_cb.py --data-root ../shared/data [--limit 100] [--max-new 256]
        [--threads 2] [--sides evalkit,transformers]

transformers 5 ships a continuous-batching generator (a paged key/value cache, prefix
blocks shared between requests, a scheduler thread); issue 17 asks that it be measured
against evalkit's and the better one used. Both run the same work: GSM8K 5-shot prompts
from evalkit's own planner (``--limit`` items, default 100, the issue's size), greedy,
until an end-of-sequence token or ``--max-new`` new tokens, the embedded
SmolLM2-135M-Instruct in float32. transformers' generator has no stop strings, so here
neither side gets GSM8K's ("Question:" ...): both generate the same tokens. Each side
runs in a fresh process; printed per side: wall time of the generation call, tokens
generated and per second, peak memory (``resource.getrusage``, model included), and
whether every text is identical to the first side's.

What the two generators offer beyond speed is printed as well: evalkit's rows stop at
stop strings and draw sampled tokens from a generator seeded per request (the same text
whatever the batching); ``generate_batch`` takes one seed for the whole call and stops
only at end-of-sequence tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def prompts(data_root: Path, limit: int, max_new: int) -> tuple[Any, list[str]]:
    """The embedded model's backend and the GSM8K 5-shot prompts evalkit's planner makes."""
    from generation_speed import task_plans  # this folder's generation benchmark: the same workload

    from evalkit.backends.hf.backend import HFBackend
    from evalkit.backends.hf.loading import EMBEDDED_SMOLLM2
    from evalkit.runner.plan import plan_requests
    from evalkit.runner.prompting import ChatSettings

    backend = HFBackend(EMBEDDED_SMOLLM2)
    plan = plan_requests(task_plans("gsm8k", limit, data_root, max_new), ChatSettings(False, True), backend, 1234)
    return backend, [r.context for r in plan.unique.values()]


def job(args: dict[str, Any]) -> dict[str, Any]:
    """Generate on one side in this process."""
    import torch

    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    backend, contexts = prompts(Path(args["data_root"]), int(args["limit"]), int(args["max_new"]))
    enc, eos = backend.encoder, backend.engine.eos_ids
    if args["side"] == "evalkit":
        from evalkit.backends.requests import GenerateRequest

        reqs = [GenerateRequest(c, max_new_tokens=int(args["max_new"])) for c in contexts]  # no stop strings
        t0 = time.perf_counter()
        out = dict(backend.generate(reqs))
        wall = time.perf_counter() - t0
        texts = [out[i].texts[0] for i in range(len(reqs))]
        tokens = sum(out[i].n_tokens[0] for i in range(len(reqs)))
    else:
        from transformers import GenerationConfig

        ids = [enc.encode(c) for c in contexts]
        config = GenerationConfig(max_new_tokens=int(args["max_new"]), do_sample=False, eos_token_id=sorted(eos),
                                  pad_token_id=backend.engine.pad_id)
        t0 = time.perf_counter()
        # Its warm-up captures CUDA graphs: of use on a GPU only (on CPU it runs the largest shapes first).
        out = backend.engine.model.generate_batch(inputs=ids, generation_config=config, progress_bar=False,
                                                  warmup=backend.engine.device.type == "cuda")
        wall = time.perf_counter() - t0
        rows = [out[k].generated_tokens for k in sorted(out, key=lambda k: int(k.rsplit("_", 1)[-1]))]
        # evalkit's texts leave the end-of-sequence token out, as its generator does.
        texts = [enc.decode([t for t in r if t not in eos]) for r in rows]
        tokens = sum(len(r) for r in rows)
    return {"wall_seconds": wall, "generated_tokens": tokens, "texts": texts,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch": torch.__version__, "transformers": __import__("transformers").__version__}


def main() -> None:
    from generation_speed import run_child  # this folder's generation benchmark: one job runner

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=os.environ.get("EVALKIT_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--max-new", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sides", default="evalkit,transformers")
    ap.add_argument("--job", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.job:
        Path(a.job[1]).write_text(json.dumps(job(json.loads(Path(a.job[0]).read_text()))))
        return
    if not (Path(a.data_root) / "gsm8k").exists():
        sys.exit(f"no GSM8K under {a.data_root}: pass --data-root (see ../shared/data/README)")
    base = {"data_root": a.data_root, "limit": a.limit, "max_new": a.max_new, "threads": a.threads}
    with tempfile.TemporaryDirectory(prefix="tcb-") as tmp:
        runs = {s: run_child({**base, "side": s}, Path(tmp), __file__) for s in a.sides.split(",")}
    first = next(iter(runs.values()))
    print(f"GSM8K 5-shot, {len(first['texts'])} prompts, greedy, up to {a.max_new} new tokens, no stop strings; "
          f"torch {first['torch']}, transformers {first['transformers']}, threads {a.threads or 'default'}")
    print(f"{'side':<14}{'wall s':>8}{'gen tok':>9}{'tok/s':>8}{'peak MiB':>10}{'same texts':>12}")
    for side, r in runs.items():
        same = sum(t == u for t, u in zip(r["texts"], first["texts"]))
        print(f"{side:<14}{r['wall_seconds']:>8.1f}{r['generated_tokens']:>9}"
              f"{r['generated_tokens'] / r['wall_seconds']:>8.1f}{r['peak_rss_mib']:>10.0f}{same:>7}/{len(r['texts'])}")
    if len(runs) > 1:
        walls = [r["wall_seconds"] for r in runs.values()]
        print(f"{list(runs)[0]} vs {list(runs)[-1]}: {walls[-1] / walls[0]:.2f}x")


if __name__ == "__main__":
    main()
