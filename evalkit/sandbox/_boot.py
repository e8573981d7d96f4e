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
"""

import builtins
import ctypes
import json
import os
import resource
import sys
import traceback
import types

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
DEVICES = ("null", "zero", "full", "random", "urandom")


def main() -> None:
    cfg = json.loads(sys.argv[1])
    try:
        source = setup(cfg)
    except BaseException as e:  # the sandbox failed, not the program: say so distinctly
        sys.stderr.write(f"evalkit sandbox: setup failed: {e!r}\n")
        sys.stderr.flush()
        os._exit(125)
    if cfg.get("chroot"):
        reap_as_init()
    run(source)


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


def setup(cfg) -> str:
    """Everything before the program: view, uid, program file, limits. Returns the program."""
    source = sys.stdin.read()
    libc = ctypes.CDLL(None, use_errno=True)
    if cfg.get("chroot"):
        enter_root(libc, cfg["chroot"])
    if cfg.get("uid") is not None:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    os.chdir(cfg["cwd"])
    with open("prog.py", "w", encoding="utf-8") as f:  # for tracebacks' source lines
        f.write(source)
    for name, (soft, hard) in cfg["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    return source


def run(source: str) -> None:
    """Run the program as ``__main__`` of ``prog.py``, as ``python prog.py`` would.

    An uncaught exception prints the traceback of the program's own frames (none of this
    file's) and exits with status 1, as Python does.
    """
    main = types.ModuleType("__main__")
    main.__file__ = "prog.py"
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = ["prog.py"]
    builtins.exit = builtins.quit = sys.exit  # what site (off: -S) would provide
    try:
        exec(compile(source, "prog.py", "exec"), main.__dict__)
    except SystemExit:
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
