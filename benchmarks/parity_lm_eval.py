"""Per-item parity with lm-eval: same model, same items, same prompts, task by task.

    python benchmarks/parity_lm_eval.py --data-root ../shared/data \\
        --limit arc_easy=200 --limit mmlu=2 --limit gsm8k=30 --json parity.json

evalkit runs every task in one suite (one model load); then, per task, lm-eval (its HF
backend, its own task YAML) gets exactly the documents and few-shot exemplars evalkit
used (``lm_eval_bridge``: local files in the hub schema, exemplars as a first-n pool).
Both load the same float32 folder of the embedded SmolLM2-135M-Instruct.

Per task it prints both tools' scores, the share of identical prompts, the per-item
agreement of predictions (multiple choice: argmax of log-likelihood, raw and per
character; GSM8K: the extracted answer and its score), the largest log-likelihood
difference, and for every disagreement the evalkit margin between the two options
involved, which tells a numerical near-tie from a real difference in what was asked.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evalkit_vs_lm_eval import lm_eval_groups  # noqa: E402
from lm_eval_bridge import CONVERTERS, run_lm_eval  # noqa: E402

from evalkit.backends.hf.loading import embedded_model_dir  # noqa: E402
from evalkit.files import read_jsonl  # noqa: E402
from evalkit.hydra_checks import compose_config  # noqa: E402
from evalkit.runner.run import run  # noqa: E402

TASKS = ["arc_easy", "arc_challenge", "hellaswag", "mmlu", "piqa", "siqa", "boolq", "winogrande", "gsm8k"]
DEFAULT_LIMITS = {"arc_easy": 200, "arc_challenge": 100, "hellaswag": 100, "mmlu": 2, "piqa": 200, "siqa": 200, "boolq": 200,
                  "winogrande": 300, "gsm8k": 30}


def run_evalkit(tasks: list[str], limits: dict[str, int | None], data_root: str, out: Path, model_dir: Path) -> Path:
    cfg = compose_config([
        "model=hf", f"model.pretrained={model_dir}", "model.name=smollm2-135m-instruct", "model.dtype=float32",
        f"data_root={data_root}", f"output_dir={out}", "report=false", "progress=false",
    ])
    cfg["suite"] = {"name": "parity", "tasks": {t: ({"limit": limits[t]} if limits.get(t) else {}) for t in tasks}}
    return run(cfg)


def _norm_pred(logprobs: list[float], choices: list[str]) -> int:
    return int(np.argmax(np.asarray(logprobs) / np.array([max(len(c), 1) for c in choices])))


def _golds(r: dict[str, Any]) -> list[int]:
    return r["gold"] if isinstance(r["gold"], list) else [r["gold"]]


def compare_task(task: str, records: list[dict], data_root: str, model_dir: Path, batch_size: int) -> dict[str, Any]:
    groups, n_shot = lm_eval_groups(task, records, data_root)
    lm = run_lm_eval(groups, model_path=str(model_dir), num_fewshot=n_shot, sampler="first_n", batch_size=batch_size)
    by_id = {(i.group, i.id): i for i in lm.items}
    pairs = [(r, by_id[(r["group"], r["id"])]) for r in records]
    out: dict[str, Any] = {"task": task, "n": len(records), "num_fewshot": n_shot,
                           "identical_prompts": float(np.mean([r["prompt"] == li.prompt for r, li in pairs])),
                           "lm_eval_seconds": round(lm.wall_seconds, 1)}
    if "logprobs" in records[0]:
        ek_acc = [float(r["pred"] in _golds(r)) for r, _ in pairs]
        ek_norm = [float(_norm_pred(r["logprobs"], r["choices"]) in _golds(r)) for r, _ in pairs]
        lm_acc = [float(li.pred in _golds(r)) for r, li in pairs]
        lm_norm = [float(li.pred_norm in _golds(r)) for r, li in pairs]
        agree = [r["pred"] == li.pred for r, li in pairs]
        agree_norm = [_norm_pred(r["logprobs"], r["choices"]) == li.pred_norm for r, li in pairs]
        diffs = [abs(a - b) for r, li in pairs for a, b in zip(r["logprobs"], li.logprobs)]
        margins = []  # evalkit's own gap between the two options the tools disagree on
        for r, li in pairs:
            if r["pred"] != li.pred:
                margins.append(abs(r["logprobs"][r["pred"]] - r["logprobs"][li.pred]))
        out.update(
            evalkit={"acc": float(np.mean(ek_acc)), "acc_norm": float(np.mean(ek_norm))},
            lm_eval={"acc": float(np.mean(lm_acc)), "acc_norm": float(np.mean(lm_norm))},
            agreement={"acc": float(np.mean(agree)), "acc_norm": float(np.mean(agree_norm))},
            max_abs_logprob_diff=float(max(diffs)), median_abs_logprob_diff=float(np.median(diffs)),
            disagreement_margins=sorted(round(m, 5) for m in margins),
        )
    else:
        ek_ans = [r["extracted"][0].get("flexible") for r, _ in pairs]
        lm_ans = [li.scores.get("output,flexible-extract") for _, li in pairs]
        ek_em = [r["scores"]["exact_match_flexible"] for r, _ in pairs]
        lm_em = [li.scores.get("exact_match,flexible-extract") for _, li in pairs]
        ek_strict = [r["scores"]["exact_match_strict"] for r, _ in pairs]
        lm_strict = [li.scores.get("exact_match,strict-match") for _, li in pairs]
        same_text = [r["outputs"][0] == li.raw_output for r, li in pairs]
        out.update(
            evalkit={"exact_match_flexible": float(np.mean(ek_em)), "exact_match_strict": float(np.mean(ek_strict))},
            lm_eval={"exact_match_flexible": float(np.mean(lm_em)), "exact_match_strict": float(np.mean(lm_strict))},
            agreement={"extracted_answer": float(np.mean([a == b for a, b in zip(ek_ans, lm_ans)])),
                       "exact_match_flexible": float(np.mean([a == b for a, b in zip(ek_em, lm_em)]))},
            identical_outputs=float(np.mean(same_text)),
            differing_outputs=[{"id": r["id"], "evalkit": r["outputs"][0][:200], "lm_eval": (li.raw_output or "")[:200]}
                               for r, li in pairs if r["outputs"][0] != li.raw_output][:5],
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, among {', '.join(sorted(CONVERTERS))}")
    ap.add_argument("--limit", action="append", default=[], metavar="TASK=N",
                    help="items per task (per subject for mmlu); 'all' for every item")
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--lm-eval-batch-size", type=int, default=8)
    ap.add_argument("--out", help="keep evalkit's run folder here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in CONVERTERS]
    if unknown:
        ap.error(f"no lm-eval bridge for {', '.join(unknown)}; available: {', '.join(sorted(CONVERTERS))}")
    limits: dict[str, int | None] = dict(DEFAULT_LIMITS)
    for item in args.limit:
        task, _, n = item.partition("=")
        limits[task] = None if n == "all" else int(n)
    model_dir = embedded_model_dir()
    with tempfile.TemporaryDirectory(prefix="parity_") as tmp:
        t0 = time.perf_counter()
        run_dir = run_evalkit(tasks, limits, args.data_root, Path(args.out or tmp), model_dir)
        ek_wall = time.perf_counter() - t0
        res = json.loads((run_dir / "results.json").read_text())
        records = {t: read_jsonl(run_dir / "samples" / f"{t}.jsonl") for t in tasks}
    rows = []
    for t in tasks:
        row = compare_task(t, records[t], args.data_root, model_dir, args.lm_eval_batch_size)
        row["evalkit_seconds"] = res["tasks"][t]["attributed_seconds"]
        rows.append(row)
        _print_row(row)
    print(f"\nevalkit wall (all tasks, one model load): {ek_wall:.1f} s")
    _print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "evalkit_wall_seconds": ek_wall, "limits": limits,
                                               "model_dir": str(model_dir)}, indent=2))


def _print_row(row: dict[str, Any]) -> None:
    print(f"\n{row['task']}: n={row['n']}, {row['num_fewshot']}-shot, identical prompts {row['identical_prompts']:.1%}")
    for k in row["evalkit"]:
        print(f"  {k:22s} evalkit {row['evalkit'][k]:.4f}  lm-eval {row['lm_eval'][k]:.4f}")
    print("  agreement: " + ", ".join(f"{k} {v:.2%}" for k, v in row["agreement"].items()))
    if "max_abs_logprob_diff" in row:
        print(f"  |Δ log-likelihood|: median {row['median_abs_logprob_diff']:.2e}, max {row['max_abs_logprob_diff']:.2e}; "
              f"evalkit margins where the argmax differs: {row['disagreement_margins']}")
    else:
        print(f"  identical outputs {row['identical_outputs']:.1%}")
        for d in row["differing_outputs"]:
            print(f"    {d['id']}: evalkit {d['evalkit']!r}\n    {' ' * len(d['id'])}  lm-eval {d['lm_eval']!r}")
    print(f"  seconds: evalkit {row['evalkit_seconds']} (attributed compute), lm-eval {row['lm_eval_seconds']}")


def _print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| task | n | metric | evalkit | lm-eval | per-item agreement | identical prompts |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for k in r["evalkit"]:
            agree = r["agreement"].get(k, r["agreement"].get("extracted_answer"))
            print(f"| {r['task']} | {r['n']} | {k} | {r['evalkit'][k]:.4f} | {r['lm_eval'][k]:.4f} | {agree:.2%} | "
                  f"{r['identical_prompts']:.1%} |")


if __name__ == "__main__":
    main()
