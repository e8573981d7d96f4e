"""The first code that runs inside a sandbox; it ends by running the untrusted program.

Run as ``python -I -c <this file's text> <json settings>`` with the program on stdin. It
uses the standard library only: evalkit and the project are not visible in the sandbox.
In order, and each step only when the settings ask for it:

1. ``chroot``: (``unshare`` isolation, as root in fresh mount/pid/net/ipc/uts namespaces)
   build a new root on a tmpfs from read-only binds of the system folders and the
   interpreter, a fresh ``/proc``, a few device nodes and private tmpfs ``/tmp`` and
   ``/work``, then chroot into it (``bwrap`` isolation builds the same view itself);
2. ``uid``: drop to an unprivileged uid/gid with no supplementary groups (the harness runs
   as root), and set no-new-privileges, so nothing below can regain root;
3. write the program to ``<cwd>/prog.py`` and apply the resource limits (after the write,
   so the file size limit never hits the bootstrap itself);
4. (``chroot`` only) fork: this process stays the namespace's init, the child goes on;
5. run the program as ``__main__`` in this interpreter: one Python start per program.

Stdin holds a per-execution secret token on its first line, then the program. Only when
the program's code has run to its end (its tests included) does this file write the
token to ``done_fd``, a pipe the harness reads: a program that leaves early (``exit()``,
``sys.exit(0)``, ``raise SystemExit``, ``os._exit(0)``, a ``main()`` that exits) never
gets there, and is not a pass whatever its exit status. The token is in no file, argument
or environment variable the program can read, and its descriptor stays with this code.
Nothing here installs ``exit``/``quit`` (``-S`` leaves them out): they are a NameError.

Without namespaces (``rlimits``) nothing tears the program's process tree down for the
harness, so this process stays as its supervisor (``supervise``): a child subreaper
whose parent-death signal kills every descendant when the harness dies.
"""

import builtins
import ctypes
import signal
import json
import os
import resource
import sys
import traceback
import types

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
DEVICES = ("null", "zero", "full", "random", "urandom")


def main() -> None:
    cfg = json.loads(sys.argv[1])
    parent = os.getppid()
    try:
        token, source = setup(cfg, parent)
    except BaseException as e:  # the sandbox failed, not the program: say so distinctly
        sys.stderr.write(f"evalkit sandbox: setup failed: {e!r}\n")
        sys.stderr.flush()
        os._exit(125)
    if cfg.get("chroot"):
        reap_as_init()
    run(source, token, cfg["done_fd"])


def reap_as_init() -> None:
    """As the namespace's first process (pid 1), fork the program and stay its init.

    The kernel spares a pid namespace's init the default action of signals such as
    SIGXCPU, so the program must not be pid 1 itself. The init reaps every orphan, then
    exits with the program's status (128 + signal for a signal, as bwrap's init does);
    its exit tears down the namespace and every process left in it. Returns in the child.
    """
    child = os.fork()
    if child == 0:
        return
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def supervise(libc) -> int:
    """Fork the program and stay its supervisor; returns the supervisor's pid in the child.

    As a child subreaper this process inherits every orphan of the program's tree, so
    its descendants are the whole tree. It kills them all when the program's first
    process ends, and when the harness dies (the parent-death signal, SIGTERM here). It
    forks before the uid drop: as root it keeps its uid, so the program cannot kill it.
    """
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    me = os.getpid()
    child = os.fork()
    if child == 0:
        return me

    def end(status: int) -> None:
        for _ in range(100):
            if not kill_descendants(me):
                break
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                break
        os._exit(status)

    signal.signal(signal.SIGTERM, lambda *_: end(128 + signal.SIGKILL))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            end(1)
        if pid == child:
            end(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def kill_descendants(root: int) -> int:
    """SIGKILL every descendant of ``root`` (from /proc's parent links); how many were found."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    todo, found = list(children.get(root, [])), 0
    while todo:
        pid = todo.pop()
        found += 1
        todo.extend(children.get(pid, []))
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return found


def setup(cfg, parent: int) -> tuple[str, str]:
    """Everything before the program: view, uid, program file, limits. Returns (token, program)."""
    token = sys.stdin.readline().strip()
    source = sys.stdin.read()
    libc = ctypes.CDLL(None, use_errno=True)
    if cfg.get("supervise"):
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            raise OSError("the harness is gone")
        parent = supervise(libc)
    if cfg.get("chroot"):
        enter_root(libc, cfg["chroot"])
    if cfg.get("uid") is not None:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    # Changing uid (or forking) cleared the parent-death signal: set it again, and leave
    # at once if the parent is already gone.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        raise OSError("the harness is gone")
    os.chdir(cfg["cwd"])
    with open("prog.py", "w", encoding="utf-8") as f:  # for tracebacks' source lines
        f.write(source)
    for name, (soft, hard) in cfg["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    return token, source


def run(source: str, token: str, done_fd: int) -> None:
    """Run the program as ``__main__`` of ``prog.py``, as ``python prog.py`` would, and
    write ``token`` to ``done_fd`` only if it ran to its end.

    An uncaught exception prints the traceback of the program's own frames (none of this
    file's) and exits with status 1, as Python does. A ``SystemExit`` is noted on
    ``done_fd`` (``EXIT <code>``, without the token) and then ends the process as usual.
    """
    main = types.ModuleType("__main__")
    main.__file__ = "prog.py"
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = ["prog.py"]
    try:
        exec(compile(source, "prog.py", "exec"), main.__dict__)
    except SystemExit as e:
        _note(done_fd, f"EXIT {e.code!r}"[:200])
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "prog.py":
            tb = tb.tb_next
        sys.stderr.write("Traceback (most recent call last):\n")
        sys.stderr.write("".join(traceback.format_exception(type(e), e, tb)).removeprefix(
            "Traceback (most recent call last):\n"))
        sys.stderr.flush()
        sys.exit(1)
    _note(done_fd, token)
    # Ended here: the program's threads and exit handlers cannot change the verdict now.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: B036 - the program may have replaced or closed them
            pass
    os._exit(0)


def _note(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode("utf-8", "replace") + b"\n")
    except OSError:  # the program closed or replaced the descriptor: no note, so no pass
        pass


def mount(libc, src, target, fstype, flags, data=None) -> None:
    enc = [None if v is None else v.encode() for v in (src, target, fstype, data)]
    if libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def enter_root(libc, c) -> None:
    """Build a minimal root at ``c['root']`` (a host folder) and chroot into it."""
    new = c["root"]
    mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing below leaks back to the host
    mount(libc, "tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m")
    for path in c["ro"]:
        target = new + path
        if os.path.islink(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
            continue
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        elif os.path.isfile(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
        else:
            continue
        mount(libc, path, target, None, MS_BIND | MS_REC)
        mount(libc, None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.makedirs(new + "/dev")
    for dev in DEVICES:
        open(f"{new}/dev/{dev}", "w").close()
        mount(libc, f"/dev/{dev}", f"{new}/dev/{dev}", None, MS_BIND)
    os.makedirs(new + "/dev/shm")  # multiprocessing's semaphores
    mount(libc, "tmpfs", new + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={c['disk_mb']}m")
    os.makedirs(new + "/proc")
    mount(libc, "proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for d in ("/tmp", "/work"):
        os.makedirs(new + d)
        mount(libc, "tmpfs", new + d, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={c['disk_mb']}m")
    mount(libc, None, new, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=0755")
    os.chroot(new)
    os.chdir("/")


if __name__ == "__main__":
    main()
