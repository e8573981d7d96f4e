"""One task through evalkit and through lm-eval's HF backend: same model, same items.

    python benchmarks/evalkit_vs_lm_eval.py --task arc_easy --limit 100 --data-root ../shared/data

Both tools run the embedded SmolLM2-135M-Instruct as the same float32 HF folder (the
materialised GGUF). evalkit runs first (fresh run folder, no cache); lm-eval then gets
exactly the documents and few-shot exemplars evalkit used, rendered with lm-eval's own
task YAML. Prints each tool's score, wall time, the share of identical prompts and the
per-item agreement of predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lm_eval_bridge import CONVERTERS, agreement, run_lm_eval  # noqa: E402

from evalkit.backends.hf.loading import embedded_model_dir  # noqa: E402
from evalkit.config import data_root as resolve_root  # noqa: E402
from evalkit.files import read_jsonl  # noqa: E402
from evalkit.hydra_checks import compose_config  # noqa: E402
from evalkit.runner.run import run  # noqa: E402
from evalkit.tasks import load_task  # noqa: E402
from evalkit.tasks.data import load_docs  # noqa: E402
from evalkit.tasks.fewshot import shared_exemplars  # noqa: E402


def run_evalkit(task: str, limit: int | None, data_root: str, out: Path, model_dir: Path, extra: list[str]) -> tuple[Path, float]:
    cfg = compose_config([
        "model=hf", f"model.pretrained={model_dir}", "model.name=smollm2-135m-instruct", "model.dtype=float32",
        f"data_root={data_root}", f"output_dir={out}", "report=false", "progress=false", *extra,
    ])
    cfg["suite"] = {"name": f"bench_{task}", "tasks": {task: {"limit": limit} if limit else {}}}
    t0 = time.perf_counter()
    run_dir = run(cfg)
    return run_dir, time.perf_counter() - t0


def lm_eval_groups(task: str, records: list[dict], data_root: str) -> tuple[list, int]:
    spec = load_task(task)
    fs = spec.fewshot
    by_group: OrderedDict[str, list[dict]] = OrderedDict()
    for r in records:
        by_group.setdefault(r["group"], []).append(r["doc"])
    pool = []
    if fs["n"]:
        pool = load_docs(spec, fs["split"], resolve_root(data_root))
    exemplars = shared_exemplars(pool, fs["n"], fs["select"], fs["seed"]) if fs["n"] else {}
    groups = [(task, g, docs, exemplars.get(g)) for g, docs in by_group.items()]
    return groups, fs["n"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="arc_easy", choices=sorted(CONVERTERS))
    ap.add_argument("--limit", type=int, default=100, help="items (per group for MMLU)")
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--lm-eval-batch-size", default="8")
    ap.add_argument("--evalkit-arg", action="append", default=[], help="extra evalkit override, repeatable")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    model_dir = embedded_model_dir()
    with tempfile.TemporaryDirectory(prefix="evalkit_bench_") as tmp:
        run_dir, ek_wall = run_evalkit(args.task, args.limit, args.data_root, Path(tmp), model_dir, args.evalkit_arg)
        res = json.loads((run_dir / "results.json").read_text())
        records = read_jsonl(run_dir / "samples" / f"{args.task}.jsonl")
    tr = res["tasks"][args.task]
    groups, n_shot = lm_eval_groups(args.task, records, args.data_root)
    bs = int(args.lm_eval_batch_size) if args.lm_eval_batch_size.isdigit() else args.lm_eval_batch_size
    lm = run_lm_eval(groups, model_path=str(model_dir), num_fewshot=n_shot, sampler="first_n", batch_size=bs)
    lm_by_id = {(i.group, i.id): i for i in lm.items}
    pairs_pred, pairs_norm, pairs_prompt, pairs_score = [], [], [], []
    for r in records:
        li = lm_by_id[(r["group"], r["id"])]
        pairs_prompt.append((r["prompt"], li.prompt))
        if "logprobs" in r:
            import numpy as np

            pairs_pred.append((r["pred"], li.pred))
            norm = int(np.argmax(np.array(r["logprobs"]) / np.array([max(len(c), 1) for c in r["choices"]])))
            pairs_norm.append((norm, li.pred_norm))
        else:
            ek = r["scores"].get("exact_match_flexible")
            pairs_score.append((ek, li.scores.get("exact_match,flexible-extract")))
            pairs_pred.append((r["extracted"][0].get("flexible"), li.scores.get("output,flexible-extract")))
    lm_scores: dict[str, float] = {}
    for it in lm.items:
        for k, v in it.scores.items():
            if not k.startswith("output"):
                lm_scores.setdefault(k, []).append(v)  # type: ignore[arg-type]
    lm_means = {k: sum(v) / len(v) for k, v in lm_scores.items()}  # type: ignore[arg-type]
    figures = {
        "task": args.task, "n": len(records), "num_fewshot": n_shot,
        "evalkit": {"metrics": {k: (m["value"], m["stderr"]) for k, m in tr["metrics"].items()},
                    "wall_seconds": round(ek_wall, 2), "model_load_seconds": res["timing"]["model_load_seconds"],
                    "tokens_forward": res["tokens"]["forward"]},
        "lm_eval": {"metrics": lm_means, "wall_seconds": round(lm.wall_seconds, 2),
                    "model_load_seconds": round(lm.load_seconds, 2), "batch_size": lm.batch_size},
        "identical_prompts": agreement(pairs_prompt),
        "prediction_agreement": agreement(pairs_pred),
        "acc_norm_prediction_agreement": agreement(pairs_norm) if pairs_norm else None,
        "score_agreement": agreement(pairs_score) if pairs_score else None,
        "load_avg": os.getloadavg(),
    }
    print(f"task {args.task}: n={len(records)}, {n_shot}-shot, same model folder {model_dir}")
    for k, (v, se) in figures["evalkit"]["metrics"].items():
        print(f"  evalkit  {k:24s} {v:.4f} ± {se if se is None else round(se, 4)}")
    for k, v in lm_means.items():
        print(f"  lm-eval  {k:24s} {v:.4f}")
    print(f"  wall (requests + scoring): evalkit {ek_wall - res['timing']['model_load_seconds']:.1f} s, "
          f"lm-eval {lm.wall_seconds:.1f} s (batch size {lm.batch_size}); "
          f"model load: evalkit {res['timing']['model_load_seconds']:.1f} s, lm-eval {lm.load_seconds:.1f} s")
    print(f"  identical prompts: {figures['identical_prompts']:.1%}; prediction agreement: {figures['prediction_agreement']:.1%}"
          + (f"; acc_norm prediction agreement: {figures['acc_norm_prediction_agreement']:.1%}" if pairs_norm else "")
          + (f"; per-item score agreement: {figures['score_agreement']:.1%}" if pairs_score else ""))
    print(f"  load average during the run: {figures['load_avg']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
