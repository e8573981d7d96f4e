"""Greedy generations through the HTTP backend against ``transformers serve`` (started here on
a free port) vs the in-process HF backend, on the same items: GSM8K, TriviaQA, HumanEval
(sandboxed) and RealToxicityPrompts. Prints per-task agreement (identical output texts),
every differing item (both texts), each side's primary metric and both wall times.

    python benchmarks/http_agreement.py --data-root ../shared/data --limit 20 --code-limit 10
    python benchmarks/http_agreement.py --data-root ../shared/data --limit 10 --tasks realtoxicityprompts --greedy-toxicity

RealToxicityPrompts samples by protocol (temperature 1, top-p 0.9, 5 per prompt), and
``transformers serve`` ignores the per-request seed, so its texts cannot match ours;
``--greedy-toxicity`` runs that row greedily (one continuation per prompt) on both sides to
compare the same prompts deterministically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evalkit.files import read_jsonl  # noqa: E402
from evalkit.runner.run import run  # noqa: E402
from tests.conftest import run_config  # noqa: E402
from tests.http_servers import TransformersServer  # noqa: E402

TASKS = ("gsm8k", "triviaqa", "humaneval", "realtoxicityprompts")


def http_and_in_process(server: Any, out: Path, suite: dict[str, Any], common: list[str], concurrency: int,
                        in_process: tuple[str, ...] = ()) -> tuple[dict[str, Path], dict[str, float]]:
    """Start ``server``, run ``suite`` through it (``"http"``) and then in-process
    (``"in-process"``, with ``in_process`` overrides); the run folders and wall times by side."""
    server.start()
    dirs, walls = {}, {}
    try:
        for label, extra in (("http", ["model=openai_compatible", f"model.base_url={server.base_url}",
                                       f"model.concurrency={concurrency}"]), ("in-process", list(in_process))):
            cfg = run_config(out / label, *common, *extra)
            cfg["suite"] = suite
            t0 = time.perf_counter()
            dirs[label] = run(cfg)
            walls[label] = time.perf_counter() - t0
    finally:
        server.stop()
    return dirs, walls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="samples")
    ap.add_argument("--limit", type=int, default=20, help="items of GSM8K, TriviaQA and RealToxicity")
    ap.add_argument("--code-limit", type=int, default=10, help="HumanEval problems")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--out", default="/tmp/evalkit_http_agreement")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    ap.add_argument("--greedy-toxicity", action="store_true", help="RealToxicity greedy, one continuation a prompt")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [t for t in a.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise SystemExit(f"--tasks: unknown {', '.join(unknown)} (choose from {', '.join(TASKS)})")
    suite = {"name": "http_agreement",
             "tasks": {t: {"limit": a.code_limit if t == "humaneval" else a.limit} for t in tasks}}
    if a.greedy_toxicity and "realtoxicityprompts" in suite["tasks"]:
        suite["tasks"]["realtoxicityprompts"]["generation"] = {"temperature": 0.0, "n": 1}
    common = [f"data_root={a.data_root}", "sandbox.allow_code_execution=true", "progress=false"]
    dirs, walls = http_and_in_process(TransformersServer(out / "serve.log"), out, suite, common, a.concurrency)
    results = {k: json.loads((d / "results.json").read_text(encoding="utf-8")) for k, d in dirs.items()}
    total = same_total = 0
    for task in tasks:
        http = {r["id"]: r["outputs"] for r in read_jsonl(dirs["http"] / "samples" / f"{task}.jsonl")}
        local = {r["id"]: r["outputs"] for r in read_jsonl(dirs["in-process"] / "samples" / f"{task}.jsonl")}
        same = sum(http[k] == local.get(k) for k in http)
        total += len(http)
        same_total += same
        metric = {k: r["tasks"][task]["primary"] for k, r in results.items()}
        values = {k: round(r["tasks"][task]["metrics"][metric[k]]["value"], 4) for k, r in results.items()}
        print(f"{task}: identical outputs {same}/{len(http)}; {metric['http']}: {values}")
        for k in http:
            if http[k] != local.get(k):
                print(f"  differs {k}:\n    http:       {http[k][0][:160]!r}\n    in-process: {local[k][0][:160]!r}")
    print(f"all tasks: identical outputs {same_total}/{total} ({100 * same_total / max(total, 1):.1f}%)")
    print(f"wall: http {walls['http']:.1f} s (concurrency {a.concurrency}); in-process {walls['in-process']:.1f} s")
    print(f"run folders: {dirs['http']} {dirs['in-process']}")


if __name__ == "__main__":
    main()
