"""Unprivileged uids for sandboxed programs (when evalkit runs as root), leased exclusively.

Each program running at the same time needs a uid of its own: RLIMIT_NPROC counts a uid's
processes, and without a pid namespace the harness kills leftovers by uid. Two evalkit
processes on one machine (a run and a test suite, say) must therefore never share one.
A uid is leased by holding an exclusive ``flock`` on ``<lock dir>/<uid>.lock``; the kernel
drops the lock when the holder exits, so a crashed run leaks nothing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalkit.errors import ConfigError

SPAN = 4096  # uids tried from the base upwards
# /run is writable by root only: a sandboxed program (rlimits mode can write /tmp) cannot
# pre-create the lock folder and squat on the leases.
LOCK_DIR = Path("/run/evalkit-sandbox-uids") if os.access("/run", os.W_OK) else \
    Path("/tmp") / f"evalkit-sandbox-uids-{os.getuid()}"


@contextmanager
def lease(base: int, count: int) -> Iterator[list[int]]:
    """Hold ``count`` uids from ``base`` upwards that no other evalkit process holds."""
    LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    held: list[tuple[int, int]] = []
    try:
        for uid in range(base, base + SPAN):
            if len(held) == count:
                break
            fd = os.open(LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((uid, fd))
        if len(held) < count:
            raise ConfigError(f"sandbox.uid_base={base}: fewer than {count} free sandbox uids in the next {SPAN} "
                              "(other evalkit runs hold them); lower sandbox.workers or wait")
        yield [uid for uid, _ in held]
    finally:
        for _, fd in held:
            os.close(fd)  # closing the descriptor releases the lock
