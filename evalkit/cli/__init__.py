"""The ``evalkit`` command: one module per subcommand in this package.

``COMMANDS`` is the command table: ``evalkit NAME ...`` imports the module and calls its
``main(argv)``; a new command is one line there (``evalkit --help`` lists it). Anything
that is not a command name runs a suite (``run`` is the default command). Config mistakes
end with one line naming the key and the valid choices, no traceback.
"""

from __future__ import annotations

import importlib
import sys

from evalkit import secrets
from evalkit.errors import EvalkitError

#: name -> (module with ``main(argv) -> int``, one-line help), in the order ``--help`` shows them.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("evalkit.cli.run", "run a suite (the default: `evalkit KEY=VALUE...` is `evalkit run KEY=VALUE...`)"),
    "report": ("evalkit.cli.report", "render finished run folders as one model-card page (one column per model)"),
    "compare": ("evalkit.cli.compare", "paired deltas between run folders, optional release gate (exit 0 only when every gated row passes)"),
    "tasks": ("evalkit.cli.tasks", "table of the task specs: card row, metric, request type, shots, data present"),
    "merge": ("evalkit.cli.merge", "score a run answered in shards (shard.index=...) once every shard is done"),
    "watch": ("evalkit.cli.watch", "evaluate each new checkpoint of a folder, gate it, keep a trend report"),
    "trend": ("evalkit.cli.trend", "the trend report (and gate) of finished checkpoint runs, ordered by step"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    secrets.install()
    try:
        if argv[:1] in (["--help"], ["-h"], ["help"]):
            if argv[0] == "help" and argv[1:2] and argv[1] in COMMANDS:
                return _command(argv[1])(["--help"])
            from evalkit.cli.help import help_text

            print(help_text())
            return 0
        if argv[:1] in (["--version"], ["-V"]):
            from evalkit import __version__

            print(f"evalkit {__version__}")
            return 0
        if argv and argv[0] in COMMANDS:
            return _command(argv[0])(argv[1:])
        return _command("run")(argv)
    except EvalkitError as e:
        print(secrets.error_line(e), file=sys.stderr)
        return 2
    except BrokenPipeError:  # `evalkit tasks | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


def _command(name: str):
    return importlib.import_module(COMMANDS[name][0]).main
