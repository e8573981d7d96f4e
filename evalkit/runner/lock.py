"""One writer per run folder.

A run holds an exclusive ``flock`` on ``<run folder>/.lock`` for its whole life and writes
who it is (pid, host, start time) into the file. A second process on the same folder
reads that and stops with one line, or waits (``wait_for_lock=true``). The kernel drops
the lock when its holder dies, however it dies (``kill -9`` included), so a lock left
by a dead process is simply taken over; nothing has to decide whether a pid is alive.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from evalkit.errors import EvalkitError

LOCK = ".lock"


class RunFolderBusy(EvalkitError):
    """Another process is writing the run folder."""


class RunLock:
    """Exclusive hold on a run folder (a context manager; released on exit or death)."""

    def __init__(self, run_dir: Path, wait: bool = False, poll_s: float = 0.5, name: str = LOCK) -> None:
        self.path = Path(run_dir) / name
        self.wait, self.poll_s = wait, poll_s
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise ``RunFolderBusy`` naming its holder (or wait when asked)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not self.wait:
                        raise RunFolderBusy(
                            f"{self.path.parent} is in use by {describe_holder(self.path)}; wait for it to "
                            "finish, or pass wait_for_lock=true to wait, or choose another run_name/output_dir"
                        ) from None
                    time.sleep(self.poll_s)
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # an unlocked, empty file: nobody holds the folder
        except OSError:
            pass  # a full disk must not keep the lock; closing releases it
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def describe_holder(path: Path) -> str:
    """``process 123 on host h since 2024-...`` from a lock file, as well as it can be read."""
    try:
        info = json.loads(path.read_text() or "{}")
        return f"process {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it is starting up)"
