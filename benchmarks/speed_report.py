"""Printing for ``speed_vs_lm_eval.py``: per-workload tables, comparisons and the summary."""

from __future__ import annotations

import re
from typing import Any

CALIBRATION_NOTE = "the fastest in `--calibrate` for ARC-e and GSM8K; 8 for the few-shot log-likelihood tasks"
TARGETS = {"ARC-e 0-shot": 3.0, "ARC-c 25-shot": 10.0, "GSM8K 5-shot": 6.0, "BBH 3-shot CoT": 4.0}


def _answer(x: Any) -> str | None:
    """A generated answer normalised like the GSM8K metric ($ and , removed, no trailing dot)."""
    if x is None:
        return None
    s = re.sub(r"[$,]", "", str(x)).strip().rstrip(".")
    try:
        return repr(float(s))
    except ValueError:
        return s


def compare(ek: dict[str, Any], lm: dict[str, Any]) -> dict[str, Any]:
    """Identical prompts and prediction agreement (on items whose prompts are identical)."""
    by_id = {(i["group"], i["id"]): i for i in lm["items"]}
    same_prompt = agree = same_text = n = 0
    for it in ek["items"]:
        other = by_id.get((it["group"], it["id"]))
        if other is None:
            continue
        n += 1
        if it["prompt"] != other["prompt"]:
            continue
        same_prompt += 1
        if "logprobs" in it:
            agree += it["pred"] == other["pred"]
        else:
            agree += _answer(it["pred"]) == _answer(other["pred"])
            same_text += (it.get("output") or "").strip() == (other.get("output") or "").strip()
    return {"n": n, "identical_prompts": same_prompt / n if n else float("nan"),
            "agreement": agree / same_prompt if same_prompt else float("nan"), "n_same": same_prompt,
            "identical_outputs": same_text / same_prompt if same_prompt else float("nan")}


def _row(name: str, r: dict[str, Any], raw_rate: float) -> str:
    rate = r["positions"] / r["wall_seconds"] if r["wall_seconds"] else float("nan")
    frac = f"{rate / raw_rate:6.1%}" if raw_rate else "   n/a"
    return (f"  {name:34s} {r['wall_seconds']:8.1f} {r['cpu_seconds']:7.1f} {r['positions']:11,d} {rate:8.0f} "
            f"{frac:>8s} {r['peak_rss_mib']:9.0f} {r['load_seconds']:6.1f}")


def pairs_of(w: Any) -> list[tuple[str, str, str]]:
    """(label, evalkit run, lm-eval run) comparisons of a workload."""
    out = [("fixed exemplars", "evalkit fixed", "lm-eval fixed")]
    if w.per_item:
        out.append(("same prompts, per-item exemplars (engineering only)", "evalkit per-item", "lm-eval per-item"))
        out.append(("each tool's default protocol (sharing + engineering)", "evalkit fixed", "lm-eval per-item"))
    return out


def print_workload(w: Any, raw: dict[str, Any]) -> None:
    rate = raw["tokens_per_second"]
    groups = f", subjects {', '.join(w.groups)}" if w.groups else ""
    print(f"\n== {w.label}: {w.limit} {w.unit}{' per subject' if w.groups else ''}{groups}")
    print(f"  {'run':34s} {'wall s':>8s} {'cpu s':>7s} {'positions':>11s} {'tok/s':>8s} {'of raw':>8s} {'peak MiB':>9s} {'load s':>6s}")
    for name, r in w.runs.items():
        print(_row(name, r, rate))
    for label, a, b in pairs_of(w):
        ek, lm = w.runs[a], w.runs[b]
        c = compare(ek, lm)
        speed = lm["wall_seconds"] / ek["wall_seconds"]
        cpu = lm["cpu_seconds"] / ek["cpu_seconds"]
        work = lm["positions"] / max(ek["positions"], 1)
        texts = f"; identical generated texts {c['identical_outputs']:.1%}" if w.kind == "generate" else ""
        print(f"  {label}: {speed:.1f}x faster in wall time, {cpu:.1f}x in CPU time ({work:.1f}x fewer positions); identical prompts "
              f"{c['identical_prompts']:.1%}; prediction agreement {c['agreement']:.1%} of {c['n_same']}{texts}")
    if w.per_item:
        fx, pi = w.runs["evalkit fixed"], w.runs["evalkit per-item"]
        print(f"  evalkit fixed vs per-item exemplars (gain from sharing): {pi['wall_seconds'] / fx['wall_seconds']:.1f}x wall, "
              f"{pi['cpu_seconds'] / fx['cpu_seconds']:.1f}x CPU")
    for name, r in w.runs.items():
        if name.startswith("evalkit") and r.get("metrics"):
            m = ", ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items())
            print(f"  {name} metrics: {m}")


def print_profile(label: str, res: dict[str, Any]) -> None:
    print(f"\n== profile of evalkit's default run, {label} (wall {res['wall_seconds']:.1f} s under the profiler)")
    print(res.get("profile", "(no profile)"))


def print_summary(chosen: list[Any], report: dict[str, Any], batch: dict[str, Any]) -> None:
    raw = report["raw"]
    print("\n== summary")
    print(f"  model: {report['model_dir']} (float32), {report['cpus']} CPUs")
    print(f"  raw forward throughput: {raw['tokens_per_second']:.0f} tokens/s (best batch shape {raw['shape']}, "
          "one logit row per sequence): the physical limit here")
    if "load_cold" in report:
        print(f"  evalkit model load: cold {report['load_cold']['load_seconds']:.1f} s (GGUF dequantised and "
              f"materialised), warm {report['load_warm']['load_seconds']:.1f} s (from the cache folder)")
    print(f"  lm-eval batch sizes: {', '.join(f'{t} {b}' for t, b in batch.items())} ({CALIBRATION_NOTE})")
    print(f"  torch threads per job (both tools): {report['threads'] or 'default'}")
    for w in chosen:
        target = TARGETS.get(w.label)
        ek, lm = w.runs["evalkit fixed"], w.runs["lm-eval fixed"]
        c = compare(ek, lm)
        speed = lm["wall_seconds"] / ek["wall_seconds"]
        verdict = ""
        if target:
            ok = speed >= target and (c["agreement"] >= 0.99 or w.kind == "generate")
            verdict = f" (target >= {target:g}x{', agreement >= 99%' if w.kind != 'generate' else ''}: {'met' if ok else 'NOT met'})"
        cpu = lm["cpu_seconds"] / ek["cpu_seconds"]
        same = ("on identical prompts" if c["identical_prompts"] == 1.0
                else f"on the same items ({c['identical_prompts']:.0%} of prompts identical)")
        print(f"  {w.label}: {speed:.1f}x lm-eval {same} (wall; {cpu:.1f}x CPU), "
              f"agreement {c['agreement']:.1%}{verdict}")
    print(f"  load average before {tuple(round(x, 2) for x in report['load_avg_before'])}, "
          f"after {tuple(round(x, 2) for x in report['load_avg_after'])}; total {report['total_seconds'] / 60:.1f} min")
