"""``evalkit report RUN_DIR [RUN_DIR ...] [gate=NAME] [-o card.html] [--screenshot card.png]``.

One run: its card. Several (e.g. the folders of a ``--multirun`` over checkpoints): one
column per run, paired deltas against the first, plots across runs and flipped items;
with ``gate=NAME`` (``conf/gate/``) the gate's verdict per row as well.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evalkit.report.build import write_report
from evalkit.card import card_frame
from evalkit.rundir import load_results


def report_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="evalkit report", description="Render finished runs as a model-card report.")
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR | gate=NAME | gate.KEY=VALUE",
                    help="run folders (each holds results.json), in order; the first is the baseline")
    ap.add_argument("-o", "--output", default="card.html", help="HTML file to write (default: card.html)")
    ap.add_argument("--screenshot", help="also save a PNG of the page (needs Debian's chromium)")
    ap.add_argument("--format", choices=("html", "model-index", "md"), default="html",
                    help="html (the card, default); model-index (README.md: Hub model-index metadata + Markdown table); "
                         "md (the Markdown table, e.g. for a pull-request comment)")
    args = ap.parse_args(argv)
    if args.format != "html":
        return _export(args)
    settings = [a for a in args.run_dirs if "=" in a and not Path(a).exists()]
    run_dirs = [a for a in args.run_dirs if a not in settings]
    from evalkit.compare.gate import load_gate

    gate = load_gate(settings)
    from evalkit.report.merge import merge_runs

    results = merge_runs([load_results(d) for d in run_dirs])
    print(card_frame(results).to_string(index=False))
    print("(percent; [low, high] is the 95% interval, Wilson for proportions; ± is 1.96 standard errors otherwise)")
    path = write_report(run_dirs, args.output, gate=gate)
    print(f"card: {path}")
    if args.screenshot:
        from evalkit.report.browser import screenshot

        print(f"screenshot: {screenshot(path, args.screenshot)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from evalkit.files import atomic_write_text
    from evalkit.report.model_index import markdown_table, model_index_card

    results = [load_results(d) for d in args.run_dirs]
    text = model_index_card(results) if args.format == "model-index" else markdown_table(results)
    out = Path(args.output if args.output != "card.html" else ("README.md" if args.format == "model-index" else "card.md"))
    atomic_write_text(out, text)
    print(text)
    print(f"wrote {out.resolve()}")
    return 0


main = report_main  # the entry `evalkit.cli.COMMANDS` calls
