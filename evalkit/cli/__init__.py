"""The ``evalkit`` command: one module per subcommand in this package.

    evalkit [hydra overrides...]          run a suite (Hydra; --multirun works)
    evalkit report RUN_DIR... [-o FILE]   render the card table of finished runs
    evalkit tasks                         list the available tasks
    evalkit merge RUN_DIR                 score a run answered in shards (shard.index=...)
    evalkit watch CKPT_DIR [key=value...]  evaluate each new checkpoint, gate it, keep a trend report
    evalkit trend RUN_DIR... [-o FILE]    the trend report of finished checkpoint runs

Config mistakes end with one line naming the key and the valid choices, no traceback.
"""

from __future__ import annotations

import sys

from evalkit import secrets
from evalkit.errors import EvalkitError

_SUBCOMMANDS = ("report", "tasks", "compare", "merge", "watch", "trend")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    secrets.install()
    try:
        if argv and argv[0] == "report":
            from evalkit.cli.report import report_main

            return report_main(argv[1:])
        if argv and argv[0] == "compare":
            from evalkit.cli.compare import compare_main  # type: ignore[import-not-found]

            return compare_main(argv[1:])
        if argv and argv[0] == "merge":
            from evalkit.cli.merge import merge_main

            return merge_main(argv[1:])
        if argv and argv[0] in ("watch", "trend"):
            from evalkit.cli import watch

            return watch.watch_main(argv[1:]) if argv[0] == "watch" else watch.trend_main(argv[1:])
        if argv and argv[0] == "tasks":
            from evalkit.cli.tasks import tasks_main

            return tasks_main(argv[1:])
        from evalkit.cli.run import run_main

        return run_main(argv)
    except EvalkitError as e:
        print(secrets.error_line(e), file=sys.stderr)
        return 2
