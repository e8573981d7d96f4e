"""``evalkit merge RUN_DIR``: score a run whose shards were answered by separate processes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def merge_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="evalkit merge",
                                description="Check every shard of RUN_DIR is complete, then score once "
                                            "and write results.json and card.html.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--no-report", action="store_true", help="do not write RUN_DIR/card.html")
    args = p.parse_args(argv)
    from evalkit.cli.run import _print_summary
    from evalkit.runner.sharded import merge_run

    logging.basicConfig(format="%(message)s")
    logging.getLogger("evalkit").setLevel(logging.INFO)
    merge_run(args.run_dir)
    _print_summary(args.run_dir)
    if not args.no_report:
        from evalkit.report.build import write_report

        print(f"card: {write_report([args.run_dir], args.run_dir / 'card.html')}")
    return 0


main = merge_main  # the entry `evalkit.cli.COMMANDS` calls
