"""``evalkit report RUN_DIR [RUN_DIR ...] [-o card.html]``."""

from __future__ import annotations

import argparse

from evalkit.report.build import write_report
from evalkit.report.table import card_frame
from evalkit.runner.rundir import load_results


def report_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="evalkit report", description="Render finished runs as a model-card table.")
    ap.add_argument("run_dirs", nargs="+", help="run folders (each holds results.json)")
    ap.add_argument("-o", "--output", default="card.html", help="HTML file to write (default: card.html)")
    args = ap.parse_args(argv)
    results = [load_results(d) for d in args.run_dirs]
    print(card_frame(results).to_string(index=False))
    path = write_report(args.run_dirs, args.output)
    print(f"card: {path}")
    return 0
