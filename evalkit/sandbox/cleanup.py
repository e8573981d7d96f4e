"""Removing what sandboxed programs leave behind, without ever raising.

A program controls what its folders hold: a directory 1,200 levels deep, folders without
permissions, names longer than a path may be. ``remove_tree`` walks such a tree with one
open folder descriptor at a time (paths are never built, so their length does not
matter; no recursion, so the depth does not either) and gives up after a bounded number
of entries, logging what it left. ``sweep`` removes what earlier evalkit processes that
died (``kill -9``, a crash) left: their per-program folders under the temporary folder
and their cgroups, after killing any process still in them.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("evalkit.sandbox")

# Per-program host folders are named after the harness's pid, so a later run can tell
# whose they are: ``evalkit-sbx-<pid>-<random>``.
FOLDER_PREFIX = "evalkit-sbx-"
_OWNED = re.compile(r"^evalkit-(?:sbx-)?(\d+)-")
MAX_ENTRIES = 1_000_000  # a bound on one clean-up's work: a program may have made anything
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def host_folder() -> Path:
    """A fresh private folder for one program, named so that ``sweep`` can tell its owner."""
    return Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))


def remove_tree(path: str | os.PathLike[str], max_entries: int = MAX_ENTRIES) -> bool:
    """Delete ``path`` and everything below it; True when it is gone. Never raises.

    Folders are opened relative to their parent's descriptor (``O_NOFOLLOW``: a symlink
    is removed, never followed) and made writable first, so modes the program set do not
    stop it. Entries that still cannot be removed are skipped and reported in the log.
    """
    try:
        return _remove(os.fspath(path), max_entries)
    except Exception as e:  # noqa: BLE001 - clean-up must never end a run
        log.warning("code sandbox: could not remove %s: %s", path, e)
        return False


def _remove(path: str, budget: int) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return True
    parent, base = os.path.split(os.path.abspath(path))
    # One open descriptor at a time (a deep tree would exhaust RLIMIT_NOFILE otherwise):
    # down by name from the parent, back up through "..". Per level on the stack: the
    # folder's name, its subfolders still to visit and the names that could not go.
    budget_left = [budget]
    fd = os.open(parent, _DIR_FLAGS)
    stack: list[tuple[str, list[str], set[str]]] = []
    try:
        fd = _descend(fd, base, stack, budget_left)
        while stack and budget_left[0] > 0:
            name, pending, skipped = stack[-1]
            if pending:
                child = pending.pop()
                try:
                    fd = _descend(fd, child, stack, budget_left)
                except OSError:
                    skipped.add(child)
                continue
            stack.pop()
            up = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = up
            try:
                if not skipped:
                    os.rmdir(name, dir_fd=fd)
                    continue
            except OSError:
                pass
            if stack:
                stack[-1][2].add(name)
    finally:
        os.close(fd)
    gone = not os.path.lexists(path)
    if not gone:
        log.warning("code sandbox: left part of %s behind (%s)", path,
                    "too many entries" if budget_left[0] <= 0 else "entries that could not be removed")
    return gone


def _descend(fd: int, name: str, stack: list[tuple[str, list[str], set[str]]], budget_left: list[int]) -> int:
    """Enter subfolder ``name`` of ``fd`` (closing ``fd``), delete its non-folders, push it."""
    child = _open_child(fd, name)
    os.close(fd)
    pending: list[str] = []
    skipped: set[str] = set()
    try:
        with os.scandir(child) as it:
            for entry in it:
                budget_left[0] -= 1
                if budget_left[0] <= 0:
                    break
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.name)
                    else:
                        os.unlink(entry.name, dir_fd=child)
                except OSError:
                    skipped.add(entry.name)
    except OSError:
        skipped.add("")  # unreadable: the folder itself cannot go
    stack.append((name, pending, skipped))
    return child


def _open_child(dir_fd: int, name: str) -> int:
    """Open subfolder ``name`` of ``dir_fd`` for listing and deleting, whatever its mode."""
    try:
        os.chmod(name, 0o700, dir_fd=dir_fd, follow_symlinks=False)
    except (OSError, NotImplementedError):
        try:  # Linux has no lchmod; a listed folder (not a link) is safe to chmod by name
            if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.chmod(name, 0o700, dir_fd=dir_fd)
        except OSError:
            pass
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_pid(name: str) -> int | None:
    """The harness pid in an ``evalkit-sbx-<pid>-...`` folder or ``evalkit-<pid>-<n>`` cgroup name."""
    m = _OWNED.match(name)
    return int(m.group(1)) if m else None


def sweep_folders(tmp: str | None = None) -> int:
    """Remove the per-program folders of evalkit processes that are gone; how many. Never raises."""
    removed = 0
    try:
        with os.scandir(tmp or tempfile.gettempdir()) as it:
            entries = [e for e in it if e.name.startswith(FOLDER_PREFIX)]
    except OSError:
        return 0
    for e in entries:
        pid = owner_pid(e.name)
        if pid is not None and pid != os.getpid() and not alive(pid) and remove_tree(e.path):
            removed += 1
    return removed


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
