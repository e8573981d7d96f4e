"""``evalkit tasks``: list the available task specs."""

from __future__ import annotations


def tasks_main(argv: list[str]) -> int:
    from evalkit.tasks import available_tasks

    print("\n".join(available_tasks()))
    return 0
