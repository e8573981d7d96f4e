"""``evalkit compare BASE_RUN NEW_RUN [MORE_RUNS...] [gate=NAME] [gate.KEY=VALUE...] [-o DIR]``.

Every run after the first is compared with the first. Writes ``summary.md`` (a pull-request
comment), ``comparison.json``, ``report.html`` and, with a gate, ``junit.xml`` (one test
case per row) into the output folder, and prints the summary.

Exit status: 0 when every gated row passes (or without a gate), 1 for any blocking verdict
(regression, inconclusive, missing, partial coverage, not testable, not comparable; see
``policy`` in ``conf/gate/``), 2 for a usage or config error (one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalkit.compare.gate import load_gate, no_gate
from evalkit.compare.outputs import markdown_summary, write_json, write_junit
from evalkit.compare.rows import compare_all
from evalkit.errors import EvalkitError
from evalkit.files import atomic_write_text
from evalkit.rundir import load_results


def compare_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="evalkit compare",
        description="Paired comparison of run folders (every run against the first), with an optional release gate.",
        epilog="Hydra-style settings: gate=NAME (conf/gate/NAME.yaml), gate.alpha=0.01, gate.rows.MMLU.max_drop=0.5")
    ap.add_argument("args", nargs="+", metavar="RUN_DIR | gate=NAME | gate.KEY=VALUE")
    ap.add_argument("-o", "--output-dir", help="folder for summary.md, junit.xml, comparison.json and report.html "
                    "(default: compare__<base>__vs__<new> beside the base run folder)")
    ap.add_argument("--junit", help="JUnit XML path (default: OUTPUT_DIR/junit.xml; written with a gate)")
    ap.add_argument("--markdown", help="Markdown summary path (default: OUTPUT_DIR/summary.md)")
    ap.add_argument("--no-html", action="store_true", help="do not write report.html")
    ns = ap.parse_args(argv)
    settings = [a for a in ns.args if "=" in a and not Path(a).exists()]
    run_dirs = [a for a in ns.args if a not in settings]
    if len(run_dirs) < 2:
        raise EvalkitError("compare needs at least two run folders: BASE_RUN NEW_RUN [MORE_RUNS...]")
    gate = load_gate(settings) or no_gate()
    results = [load_results(d) for d in run_dirs]
    comps = compare_all(results, gate)
    if not any(r.status == "ok" for c in comps for r in c.rows):
        reasons = "; ".join(dict.fromkeys(r.reason for c in comps for r in c.rows if r.reason)) or "no task in common"
        raise EvalkitError(f"nothing to compare: {reasons}")

    out = Path(ns.output_dir) if ns.output_dir else default_output_dir(run_dirs)
    summary = markdown_summary(comps)
    md_path = Path(ns.markdown) if ns.markdown else out / "summary.md"
    atomic_write_text(md_path, summary)
    write_json(comps, out / "comparison.json")
    written = [md_path, out / "comparison.json"]
    if gate.enforced:
        written.append(write_junit(comps, Path(ns.junit) if ns.junit else out / "junit.xml"))
    if not ns.no_html:
        from evalkit.report.build import write_report

        written.append(write_report(run_dirs, out / "report.html", gate=gate, comparisons=comps))
    print(summary)
    for p in written:
        print(f"wrote {p}", file=sys.stderr)
    return 0 if all(c.passed for c in comps) or not gate.enforced else 1


def default_output_dir(run_dirs: list[str]) -> Path:
    """``<base's parent>/compare__<base>__vs__<new>[+<more>]``: one folder per comparison,
    so comparing other runs never overwrites this one."""
    names = [Path(d).resolve().name[:60] for d in run_dirs]
    return Path(run_dirs[0]).resolve().parent / f"compare__{names[0]}__vs__{'+'.join(names[1:])}"[:200]


main = compare_main  # the entry `evalkit.cli.COMMANDS` calls
