"""``evalkit trend RUN_DIR... [-o FILE]``: the trend report of finished checkpoint runs (see ``evalkit.cli.watch``)."""

from evalkit.cli.watch import trend_main as main

__all__ = ["main"]
