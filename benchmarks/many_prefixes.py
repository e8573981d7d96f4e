"""Continuous batching with many few-shot prefixes in flight: BBH, every task, a few items each.

Each BBH task has its own 3-shot CoT prefix (~900 tokens), so with all 27 tasks decoding
together the prefix bank holds ~24,000 columns, of which each row needs only its own task's.
Prints the wall time of the whole run (model load excluded), the tokens generated and a
hash of the generated texts, so two commits can be compared on the same machine:

    python benchmarks/many_prefixes.py --data-root ../shared/data
    PYTHONPATH=/path/to/other/checkout python benchmarks/many_prefixes.py --data-root ../shared/data

(the second line runs another checkout's code with this script; the hashes must be equal).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--limit", type=int, default=2, help="items per BBH task")
    ap.add_argument("--max-new", type=int, default=64, help="new tokens per item at most")
    a = ap.parse_args()

    import evalkit
    from evalkit.backends.registry import build_backend
    from evalkit.files import read_jsonl
    from evalkit.hydra_checks import compose_config
    from evalkit.runner.run import run

    out = tempfile.mkdtemp(prefix="evalkit_many_prefixes_")
    cfg = compose_config([f"data_root={a.data_root}", f"output_dir={out}", "report=false", "progress=false"])
    cfg["suite"] = {"name": "many_prefixes",
                    "tasks": {"bbh": {"limit": a.limit, "generation": {"max_new_tokens": a.max_new}}}}
    backend = build_backend(cfg["model"])
    t0 = time.perf_counter()
    run_dir = run(cfg, backend=backend)
    wall = time.perf_counter() - t0
    texts = [r["outputs"][0] for r in read_jsonl(Path(run_dir) / "samples" / "bbh.jsonl")]
    tokens = json.loads((Path(run_dir) / "results.json").read_text())["tokens"].get("generated")
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]
    print(f"code {Path(evalkit.__file__).parent}: {len(texts)} items, wall {wall:.1f} s, "
          f"{tokens} tokens generated, texts {digest}")


if __name__ == "__main__":
    main()
