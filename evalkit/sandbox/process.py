"""Run one untrusted program under an ``Isolation`` and say what became of it.

The program goes in on stdin after a fresh secret token (the bootstrap writes the program
inside the sandbox), stdout is discarded, stderr goes to an anonymous host file (bounded
by the file size limit) of which the tail is kept. The program passes only if the
bootstrap handed the token back on a pipe, which it does once the program's code (its
tests included) has run to the end: an exit before that is ``exited_early``, whatever
its status.

Whatever happens, every process the program started is killed before this returns: the
pid namespace dies with its first process (bwrap, unshare), and the harness also kills
the session's process group, the program's cgroup and, as root without namespaces, every
process of the sandbox uid and every file it left in the shared temporary folders. If
the harness itself dies, the parent-death signal set on the sandbox's first process (and
kept up by the bootstrap) takes the whole tree down with it.
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.sandbox import uids
from evalkit.sandbox.cgroups import Cgroup
from evalkit.sandbox.cleanup import host_folder, remove_tree
from evalkit.sandbox.settings import Limits

if TYPE_CHECKING:
    from evalkit.sandbox.isolation import Isolation

# exited_early: the program ended (any status) before its tests had run to the end.
# error: the harness could not run or judge it (recorded on the item; the item is not scored).
OUTCOMES = ("passed", "failed", "exited_early", "timeout", "crashed", "killed_for_limit", "error")
# Shared temporary folders a program may write to without namespaces (rlimits): as root,
# what its uid made there is removed after it.
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)
# How the sandbox itself (bwrap, unshare, the cgroup wrapper, the bootstrap) says it failed.
_SETUP_PREFIXES = ("bwrap: ", "unshare: ", "evalkit sandbox: ")
# Joins the program's cgroup(s) by pid, then execs the sandbox: children inherit the group.
_JOIN = ('n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || '
         '{ echo "evalkit sandbox: cannot join cgroup $1" >&2; exit 125; }; shift; n=$((n-1)); done; exec "$@"')
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")


@dataclass
class Execution:
    """The fate of one program."""

    outcome: str  # one of OUTCOMES
    detail: str  # exception type, limit hit or signal; "" when passed
    stderr: str  # the last ``stderr_chars`` characters
    seconds: float  # wall time, sandbox start included
    returncode: int | None

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 4)}


def run_program(source: str, iso: Isolation, limits: Limits, uid: int | None = None, uid_base: int = 61000,
                stderr_chars: int = 2000) -> Execution:
    """Run ``source`` once under ``iso`` with ``limits``.

    As root the program runs as ``uid``, which the caller must hold (``uids.lease``); with
    ``uid`` None one is leased from ``uid_base`` up for this program alone.
    """
    if iso.as_root and uid == 0:
        raise ValueError("run_program: sandboxed programs never run as root (uid 0); pass a leased uid or None")
    if iso.as_root and uid is None:
        with uids.lease(uid_base, 1) as (leased,):
            return run_program(source, iso, limits, leased, uid_base, stderr_chars)
    uid = uid if iso.as_root else None
    host_dir = host_folder()
    group = None
    done_r, done_w = os.pipe()
    token = secrets.token_hex(16)
    try:
        argv, env, cwd = iso.command(limits, uid, host_dir, done_w)
        if iso.cgroup_root is not None:
            # A few pids more than RLIMIT_NPROC: bwrap's own processes live in the group too.
            group = Cgroup.create(iso.cgroup_root, limits.memory_mb << 20, limits.processes + 4)
            argv = ["/bin/sh", "-c", _JOIN, "sh", str(len(group.procs_files)), *group.procs_files, *argv]
        events: dict[str, Any] = {}
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                    cwd=cwd, start_new_session=True, close_fds=True, pass_fds=(done_w,),
                                    preexec_fn=_die_with(os.getpid()))
            os.close(done_w)
            done_w = -1
            try:
                _feed(proc, (token + "\n" + source).encode("utf-8"))
                timed_out = not _wait(proc, limits.wall_seconds)
            finally:
                _kill_all(proc.pid, group)
                proc.wait()
                if iso.name == "rlimits" and uid is not None:  # no pid namespace: hunt the uid's leftovers
                    _kill_uid(uid)
                    _remove_owned(uid)
            seconds = time.perf_counter() - t0
            note = _read_note(done_r)
            events["completed"] = int(token in note.split())
            if note.startswith("EXIT "):
                events["system_exit"] = note.splitlines()[0][5:]
            events.update(group.events() if group else {})
            # Python ignores SIGXFSZ: a program that fills stderr up to the size limit dies of a
            # failed write (often exit status 120, without a traceback). The size tells.
            events["stderr_full"] = int(err.seek(0, os.SEEK_END) >= limits.file_size_mb << 20)
            # Classified on a longer tail than the record keeps: a traceback quoting a
            # 2,000-character line would otherwise lose its "Traceback" header.
            stderr = _tail(err, _CLASSIFY_CHARS)
        outcome, detail = classify(proc.returncode, timed_out, stderr, events, iso.name, limits)
        return Execution(outcome, detail, stderr[-stderr_chars:], seconds, proc.returncode)
    finally:
        for fd in (done_r, done_w):
            if fd >= 0:
                os.close(fd)
        if group is not None:
            group.remove()
        remove_tree(host_dir)


def _die_with(harness: int):
    """A ``preexec_fn``: SIGKILL the sandbox's first process when the harness's thread
    that started it dies (bwrap and unshare then tear down the whole namespace; the
    bootstrap sets it again after changing uid and, without namespaces, supervises)."""

    def preexec() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != harness:  # the harness died before the line above
            os._exit(137)

    return preexec


def _read_note(fd: int) -> str:
    """What the bootstrap wrote on the completion pipe (bounded: the program may write there too)."""
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < 65536:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _remove_owned(uid: int) -> None:
    """Remove what ``uid`` (a leased sandbox uid: nothing else uses it) left in the shared
    temporary folders. Never raises."""
    for folder in SHARED_TMP:
        try:
            with os.scandir(folder) as it:
                mine = [e.path for e in it if e.stat(follow_symlinks=False).st_uid == uid]
        except OSError:
            continue
        for path in mine:
            remove_tree(path)


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    """Send the program to the bootstrap's stdin and close it (a thread when it exceeds a pipe buffer)."""

    def write() -> None:
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except (BrokenPipeError, OSError):  # the sandbox failed before reading; its stderr says why
            pass

    if len(data) < 60_000:
        write()
    else:
        threading.Thread(target=write, daemon=True).start()


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for ``proc`` to exit, at most ``timeout`` seconds; False if it is still running.

    A pidfd wakes up the moment the process exits (``Popen.wait(timeout)`` polls with
    sleeps of up to 50 ms, which would cost more than a program's own run time).
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def classify(rc: int, timed_out: bool, stderr: str, events: dict[str, int], mechanism: str,
             limits: Limits) -> tuple[str, str]:
    """(outcome, detail) from how the sandbox ended."""
    if events.get("oom_kill"):  # the kernel killed part of the tree: the likeliest cause of what followed
        return "killed_for_limit", f"memory ({limits.memory_mb} MB for the process tree, cgroup)"
    if timed_out:
        return "timeout", f"wall clock limit ({limits.wall_seconds:g} s)"
    if rc == 0 and events.get("completed"):
        return "passed", ""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if lines and lines[-1].startswith(_SETUP_PREFIXES):
        return "crashed", "sandbox setup failed: " + (lines[-1] if lines else f"exit status {rc}")
    # bwrap's init, the bootstrap in unshare mode and the rlimits supervisor report a signal death as 128 + signal.
    sig = -rc if rc < 0 else (rc - 128 if mechanism in ("bwrap", "unshare", "rlimits") and 128 < rc < 160 else None)
    exc, message = _exception(lines) if "Traceback (most recent call last):" in stderr else (None, "")
    if sig == signal.SIGXCPU:
        return "killed_for_limit", f"cpu time ({limits.cpu_seconds:g} s)"
    if sig == signal.SIGXFSZ or events.get("stderr_full") or (exc == "OSError" and "File too large" in message):
        return "killed_for_limit", f"file size ({limits.file_size_mb} MB)"
    if sig == signal.SIGKILL:
        return "killed_for_limit", "SIGKILL (cpu hard limit or out of memory)"
    if exc == "MemoryError":
        return "killed_for_limit", f"memory ({limits.memory_mb} MB address space)"
    if exc == "BlockingIOError" or (exc == "OSError" and "Resource temporarily unavailable" in message):
        return "killed_for_limit", f"processes ({limits.processes})"
    if exc == "OSError" and "Too many open files" in message:
        return "killed_for_limit", f"open files ({limits.open_files})"
    if sig is not None:
        return "crashed", f"signal {_signame(sig)}"
    if "system_exit" in events:
        return "exited_early", f"SystemExit({events['system_exit']}) before the tests ended"
    if exc:
        return "failed", exc
    if events.get("completed"):  # ran to the end, then a non-zero status (the bootstrap exits 0 there)
        return "crashed", f"exit status {rc}"
    return "exited_early", f"exit status {rc} before the tests ended (os._exit or similar)"


def _exception(lines: list[str]) -> tuple[str | None, str]:
    """The type and message of the traceback's final line."""
    for line in reversed(lines):
        if line.startswith((" ", "\t")):
            continue
        m = _EXC_LINE.match(line)
        if m:  # "socket.timeout: ..." -> "timeout"
            return m.group(1).rsplit(".", 1)[-1], m.group(2) or ""
        break
    return None, ""


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


_CLASSIFY_CHARS = 65536


def _tail(f, chars: int) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 4 * chars))
    return f.read().decode("utf-8", errors="replace")[-chars:]


def _kill_all(pid: int, group: Cgroup | None) -> None:
    """SIGKILL what the program may have left: its session's process group and its cgroup.

    (With bwrap or unshare, killing the sandbox's first process tears down its pid
    namespace and everything in it.)
    """
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if group is not None:
        group.kill_all()


def _kill_uid(uid: int, patience: float = 2.0) -> None:
    """SIGKILL every process whose real uid is ``uid`` (a leased uid is used by nothing else),
    and wait (at most ``patience`` seconds) until even their zombies are reaped: zombies still
    count against RLIMIT_NPROC, and the uid's next program must start from none."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        found = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/status") as f:
                    status = dict(line.split(":", 1) for line in f if line.startswith(("State:", "Uid:")))
                if int(status["Uid"].split()[0]) == uid:
                    found = True
                    if not status["State"].strip().startswith("Z"):
                        os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, KeyError, ValueError):
                continue
        if not found:
            return
        time.sleep(0.005)
