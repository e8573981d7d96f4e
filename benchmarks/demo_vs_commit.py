"""`make demo`'s run step, this checkout against another commit, side by side.

    python benchmarks/demo_vs_commit.py 7aca783 [--runs 2] [--keep]

Checks the other commit out as a git worktree (in a temporary folder) and runs the demo
command (``evalkit suite=card sandbox.allow_code_execution=true max_gen_toks=48``) with
this checkout's ``.venv`` alternately on each side, every run into a fresh output folder
(so nothing is read back from an earlier run's cache). Prints per run: wall time, the
answer phase's seconds (generation, log-likelihood) and forward calls, and a hash of every
sample's outputs, extracted answer and scores, so both sides can be checked for identical
results. Alternating runs share the machine's drift; on a loaded machine compare the
ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ["suite=card", "sandbox.allow_code_execution=true", "max_gen_toks=48"]


def last_line(text: str) -> str:
    """The last non-empty line of a command's error output (its one-line reason)."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no error output)"


def samples_hash(run_dir: Path) -> str:
    """A short hash of every sample's outputs, extracted answer and scores."""
    h = hashlib.sha256()
    for f in sorted(run_dir.glob("samples/*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            h.update(json.dumps([r.get("outputs"), r.get("extracted"), r.get("scores")], sort_keys=True).encode())
    return h.hexdigest()[:12]


def run_demo(code: Path, out: Path) -> dict:
    """One demo run with ``code`` first on the import path; its wall time and figures."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    t0 = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "evalkit"), *DEMO, f"output_dir={out}"], env=env,
                          cwd=code, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"demo failed in {code} (exit {proc.returncode}): {last_line(proc.stderr)}")
    found = [p.parent for p in out.glob("*/answer.json")]
    if len(found) != 1:
        sys.exit(f"expected one run folder with answer.json under {out}, found {len(found)}")
    run_dir = found[0]
    answer = json.loads((run_dir / "answer.json").read_text())
    return {"wall": wall, "seconds": answer["request_seconds"], "calls": answer["tokens"]["forward_calls"],
            "hash": samples_hash(run_dir)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", help="the commit to compare against")
    ap.add_argument("--runs", type=int, default=2, help="runs on each side, alternating")
    ap.add_argument("--keep", action="store_true", help="keep the worktree and run folders")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="evalkit_demo_vs_"))
    base = tmp / "base"
    made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), a.base],
                          capture_output=True, text=True)
    if made.returncode:
        sys.exit(f"cannot check out {a.base!r} as a worktree: {last_line(made.stderr)}")
    try:
        sides = {f"base {a.base}": base, "this checkout": ROOT}
        results: dict[str, list[dict]] = {k: [] for k in sides}
        for i in range(a.runs):
            for name, code in sides.items():
                r = run_demo(code, tmp / f"{len(results[name])}-{name.split()[0]}")
                results[name].append(r)
                print(f"{name:<22} run {i + 1}: {r['wall']:6.1f} s  generate {r['seconds'].get('generate', 0):5.1f} s"
                      f"  loglikelihood {r['seconds'].get('loglikelihood', 0):5.1f} s  forward calls {r['calls']:4}"
                      f"  samples {r['hash']}", flush=True)
        bs, hs = results.values()
        ratio = min(x["wall"] for x in bs) / min(x["wall"] for x in hs)
        same = {x["hash"] for x in bs} == {x["hash"] for x in hs} and len({x["hash"] for x in bs}) == 1
        print(f"fastest run: {ratio:.2f}x faster than {a.base}; samples identical: {'yes' if same else 'NO'}")
    finally:
        if not a.keep:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)


if __name__ == "__main__":
    main()
