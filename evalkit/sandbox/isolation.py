"""Which OS isolation this machine offers, and the command that runs a program under it.

Three mechanisms; ``auto`` takes the first of the two namespace ones whose probe program
runs, and refuses to execute code when neither does (fail closed): resource limits alone
are used only when the config names them (``sandbox.isolation=rlimits``).

``bwrap``   bubblewrap: new mount, pid, network, ipc and uts namespaces; the program sees
            only read-only system folders and its interpreter, a fresh ``/proc`` and
            ``/dev``, and private tmpfs ``/tmp`` and ``/work``: no home, no project, no
            data, no network (loopback only). As root, bwrap runs privileged and the
            bootstrap drops to an unprivileged uid; otherwise bwrap makes a user namespace.
``unshare`` util-linux ``unshare`` (root only): the same namespaces, and the bootstrap
            builds the same read-only view itself (tmpfs root, binds, chroot), then drops
            to an unprivileged uid.
``rlimits`` no OS isolation: resource limits, a private working and temporary folder,
            a scrubbed environment and (as root) an unprivileged uid whose processes and
            files in /tmp, /var/tmp, /dev/shm are removed after each program. The program
            can reach the network (host loopback ports included) and read world-readable
            files. Only when named, and with a loud warning.

On every mechanism the bootstrap (``_boot.py``) applies the resource limits, and where
cgroups are writable each program's process tree also gets a memory and pids budget.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError
from evalkit.paths import ROOT
from evalkit.sandbox import cgroups, cleanup
from evalkit.sandbox.settings import Limits, SandboxSettings

log = logging.getLogger("evalkit.sandbox")

MECHANISMS = ("bwrap", "unshare", "rlimits")
NAMESPACED = ("bwrap", "unshare")  # what ``auto`` may choose
# Read-only in the sandbox: what an interpreter needs, nothing of the user's.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache", "/etc/localtime")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp"}
BOOT_SOURCE = (Path(__file__).with_name("_boot.py")).read_text(encoding="utf-8")
_DEGRADED = {
    "unshare": "programs run in namespaces made by util-linux unshare, not bubblewrap (the same isolation, "
               "built by evalkit's own bootstrap and less proven): install bubblewrap",
    "rlimits": "NO OS ISOLATION (sandbox.isolation=rlimits): programs run with resource limits only; they can "
               "reach the network and host loopback ports and read world-readable files (unless evalkit runs as "
               "root, also everything your user can read, and files they leave in /tmp, /var/tmp and /dev/shm "
               "stay): install "
               "bubblewrap (apt-get install bubblewrap) and use sandbox.isolation=auto",
}
# The one line ``auto`` ends with when no namespace mechanism works here.
_REFUSAL = ("no namespace isolation works on this machine ({tried}), so evalkit will not run model-written "
            "code; to accept resource limits only, set sandbox.isolation=rlimits (programs then reach the "
            "network and host loopback ports and read every world-readable file, the project and data included)")
_swept = False


@dataclass(frozen=True)
class Isolation:
    """A chosen mechanism and everything needed to build a program's command line."""

    name: str
    python: str
    ro_paths: tuple[str, ...]
    as_root: bool
    cgroup_root: cgroups.CgroupRoot | None
    bwrap_version: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def degraded(self) -> bool:
        return self.name != "bwrap" or self.cgroup_root is None

    def command(self, limits: Limits, uid: int | None, host_dir: Path,
                done_fd: int) -> tuple[list[str], dict[str, str], Path]:
        """(argv, environment, working folder) that run one program read from stdin.

        ``uid``: the leased sandbox uid the bootstrap drops to (root), None otherwise.
        ``host_dir`` is a fresh, harness-owned folder: the chroot root (unshare) or the
        working and temporary folders (rlimits); bwrap needs none. ``done_fd``: the
        inherited pipe on which the bootstrap says the program ran to its end.
        """
        rlimits = limits.rlimits()
        if self.name == "rlimits" and not self.as_root:
            # RLIMIT_NPROC counts all of the user's processes here (no uid or user namespace of its own).
            n = _own_processes() + limits.processes
            rlimits["RLIMIT_NPROC"] = (n, n)
        boot: dict[str, Any] = {"cwd": "/work", "limits": rlimits, "uid": uid, "gid": uid, "done_fd": done_fd}
        env = {**ENV, "HOME": "/work"}
        # -S: no site-packages, the standard library only (and no slow .pth hooks at every start).
        python = [self.python, "-I", "-S", "-c", BOOT_SOURCE]
        if self.name == "bwrap":
            return ["bwrap", *self._bwrap_args(limits), "--", *python, json.dumps(boot)], {}, host_dir
        if self.name == "unshare":
            root = host_dir / "root"
            root.mkdir(mode=0o700)
            boot["chroot"] = {"root": str(root), "ro": list(self.ro_paths), "disk_mb": limits.disk_mb}
            argv = ["unshare", "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--", *python]
            return argv + [json.dumps(boot)], env, host_dir
        work, tmp = host_dir / "work", host_dir / "tmp"
        for d in (work, tmp):
            d.mkdir(mode=0o700)
            if uid is not None:
                os.chown(d, uid, uid)
        if uid is not None:
            host_dir.chmod(0o711)  # the sandbox uid may pass through, not list
        boot["cwd"] = str(work)
        boot["supervise"] = True  # no pid namespace to take the tree down: the bootstrap does
        return python + [json.dumps(boot)], {**env, "HOME": str(work), "TMPDIR": str(tmp)}, work

    def _bwrap_args(self, limits: Limits) -> list[str]:
        if self.as_root:  # privileged bwrap, no user namespace; the bootstrap drops to the sandbox uid
            ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                  "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            ns = ["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                  "--unshare-cgroup-try", "--disable-userns"]
        args = [*ns, "--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv"]
        for k, v in {**ENV, "HOME": "/work"}.items():
            args += ["--setenv", k, v]
        made: set[str] = set()
        for path in self.ro_paths:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
                continue
            # Folders bwrap creates on the way to a bind are 0700: make them traversable.
            for parent in map(str, reversed(Path(path).parents[:-1])):
                if parent not in made and not any(_inside(parent, p) for p in self.ro_paths):
                    args += ["--perms", "0755", "--dir", parent]
                    made.add(parent)
            args += ["--ro-bind", path, path]
        size = str(limits.disk_mb << 20)
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm",  # multiprocessing's semaphores
                 "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
                 "--perms", "1777", "--size", size, "--tmpfs", "/work", "--chdir", "/work"]
        return args

    def describe(self, settings: SandboxSettings) -> dict[str, Any]:
        """What protects the host, for results.json and the report."""
        who = (f"a uid of its own leased from {settings.uid_base} up (unprivileged, no groups, no-new-privs)"
               if self.as_root
               else "the invoking user" + (" in a user namespace" if self.name == "bwrap" else ""))
        namespaces = {"bwrap": "mount, pid, network (loopback only), ipc, uts",
                      "unshare": "mount, pid, network (no interface up), ipc, uts"}.get(self.name, "none")
        if self.name == "rlimits":
            fs = ("the host's (world-readable files readable); private working and temporary folders" +
                  ("; what the sandbox uid leaves in /tmp, /var/tmp, /dev/shm is removed" if self.as_root
                   else "; files left in /tmp, /var/tmp, /dev/shm are NOT removed (no uid of its own)"))
        else:
            # The interpreter may live under the home or the project (pyenv, a venv): say so.
            private = [str(Path.home()), str(ROOT)]
            exposed = [p for p in self.ro_paths if any(_inside(p, d) for d in private)]
            fs = ("read-only " + ", ".join(self.ro_paths) + f"; private tmpfs /tmp and /work ({settings.limits.disk_mb} "
                  "MB each); no home, project or data folders" +
                  (f" (except the interpreter's own, read-only: {', '.join(exposed)})" if exposed else ""))
        return {
            "mechanism": self.name,
            "bwrap_version": self.bwrap_version,
            "namespaces": namespaces,
            "filesystem": fs,
            "runs_as": who,
            "network": "none" if self.name != "rlimits" else "host network (NOT isolated)",
            "cgroups": self.cgroup_root.describe() if self.cgroup_root else "none (per-process rlimits only)",
            "limits": {**settings.limits.__dict__},
            "python": self.python,
            "degraded": self.degraded,
            "warnings": list(self.warnings),
        }


def choose(settings: SandboxSettings) -> Isolation:
    """The isolation ``settings.isolation`` asks for (``auto``: the strongest that works).

    Raises ``ConfigError`` when a named mechanism does not work here, and when ``auto``
    finds no namespace mechanism (it never falls back to rlimits); warns (logging, and in
    ``Isolation.warnings``) whenever the result is weaker than bwrap with cgroups. The
    first call also sweeps what killed evalkit processes left behind.
    """
    global _swept
    if not _swept:
        _swept = True
        sweep_leftovers()
    return _choose(settings.isolation, settings.python, settings.limits.disk_mb, settings.uid_base)


@functools.lru_cache(maxsize=8)
def _choose(wanted: str, python: str | None, disk_mb: int, uid_base: int) -> Isolation:
    py, ro = _interpreter(python)
    as_root = os.geteuid() == 0
    cg = cgroups.detect()
    tried: list[str] = []
    for name in NAMESPACED if wanted == "auto" else (wanted,):
        iso = Isolation(name, py, ro, as_root, cg, _bwrap_version() if name == "bwrap" else None)
        problem = _probe(iso, Limits(disk_mb=disk_mb), uid_base)
        if problem is None:
            warnings = ([_DEGRADED[name]] if name in _DEGRADED else [])
            if cg is None:
                warnings.append("no writable cgroup: memory and process limits apply per process, not to a "
                                "program's whole process tree (run as root on a cgroup-enabled host for both)")
            for w in warnings:
                log.warning("code sandbox: %s", w)
            return Isolation(name, py, ro, as_root, cg, iso.bwrap_version, tuple(warnings))
        tried.append(f"{name}: {problem}")
        if wanted != "auto":
            raise ConfigError(f"sandbox.isolation={name} does not work on this machine ({problem}); "
                              "use sandbox.isolation=auto to take the strongest available")
    raise ConfigError(_REFUSAL.format(tried="; ".join(tried)))


def sweep_leftovers() -> dict[str, int]:
    """Remove the cgroups and host folders of evalkit processes that died without cleaning
    up (``kill -9``), killing what still runs in those groups. Never raises."""
    out = {"folders": cleanup.sweep_folders(), "cgroups": 0}
    try:
        root = cgroups.detect()
    except OSError:
        root = None
    if root is not None:
        out["cgroups"] = cgroups.sweep(root)
    if any(out.values()):
        log.info("code sandbox: removed leftovers of earlier runs: %s", out)
    return out


def _own_processes() -> int:
    uid = os.getuid()
    return sum(1 for e in os.scandir("/proc") if e.name.isdigit() and _owner(e.path) == uid)


def _owner(path: str) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


def _world_readable(path: str) -> bool:
    """Whether any user may reach ``path`` (every folder on the way lets others through)."""
    p = Path(path)
    return all(os.stat(a).st_mode & stat.S_IXOTH for a in [*p.parents, p] if a.is_dir()) and \
        bool(os.stat(p).st_mode & stat.S_IROTH)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _interpreter(python: str | None) -> tuple[str, tuple[str, ...]]:
    """The programs' interpreter and the read-only paths it needs (system folders + its prefixes)."""
    py = python or os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    out = subprocess.run([py, "-I", "-c", "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix, "
                          "sys.exec_prefix, sys.base_exec_prefix]))"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise ConfigError(f"sandbox.python={py}: cannot run it ({out.stderr.strip()[-200:]})")
    extra = [os.path.realpath(p) for p in json.loads(out.stdout)] + [os.path.dirname(os.path.realpath(py))]
    paths = [p for p in SYSTEM_PATHS if os.path.lexists(p)]
    for p in extra:
        if not any(_inside(p, s) for s in paths):
            paths.append(p)
    return py, tuple(paths)


def _bwrap_version() -> str | None:
    exe = shutil.which("bwrap")
    if not exe:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return out.stdout.strip() or None


def _probe(iso: Isolation, limits: Limits, uid_base: int) -> str | None:
    """None if a trivial program passes under ``iso``, else why not (one line)."""
    from evalkit.sandbox.process import run_program  # process imports this module

    if iso.name == "bwrap" and not shutil.which("bwrap"):
        return "bwrap is not installed"
    if iso.name == "unshare" and not (iso.as_root and shutil.which("unshare")):
        return "needs root and util-linux unshare"
    if iso.name == "rlimits" and iso.as_root:
        hidden = [p for p in iso.ro_paths if not _world_readable(p)]
        if hidden:
            return (f"{hidden[0]} is not readable by the unprivileged sandbox uid; set sandbox.python to a "
                    "system-wide interpreter (e.g. /usr/bin/python3)")
    ex = run_program("import sys\nassert sys.flags.isolated\n", iso, limits, uid_base=uid_base, stderr_chars=300)
    if ex.outcome == "passed":
        return None
    last = ex.stderr.strip().splitlines()[-1] if ex.stderr.strip() else ex.detail
    return f"probe program {ex.outcome}: {last}"
