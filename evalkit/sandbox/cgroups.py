"""Per-program control groups: one memory and process budget for a program's whole tree.

Resource limits (``setrlimit``) bound each process; a program that forks 30 children
could still use 30 times the memory limit. Where the harness may create cgroups (root,
cgroup v1 ``memory`` + ``pids`` hierarchies, or cgroup v2 with both controllers enabled
below the harness's own group), each program gets a fresh child group of the harness's
group, with ``memory`` and ``pids`` limits, that is emptied (SIGKILL) and removed after
the program. Elsewhere the sandbox runs without them and says so.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_COUNTER = itertools.count()


@dataclass(frozen=True)
class CgroupRoot:
    """Where per-program groups are created: one parent folder per controller."""

    version: int
    parents: dict[str, Path]  # controller ("memory", "pids") -> parent folder (v2: the same folder)

    def describe(self) -> str:
        where = ", ".join(f"{c}: {p}" for c, p in self.parents.items())
        return f"cgroup v{self.version} ({where})"


def detect() -> CgroupRoot | None:
    """The harness's own cgroups, if per-program child groups with memory and pids limits can be made."""
    if os.geteuid() != 0:
        return None
    own = _own_groups()
    v1 = {c: Path("/sys/fs/cgroup") / c / own[c].lstrip("/") for c in ("memory", "pids") if c in own}
    if len(v1) == 2 and all((p / "cgroup.procs").exists() for p in v1.values()):
        root = CgroupRoot(1, v1)
    elif "" in own and (v2 := _v2_parent(own[""])) is not None:
        root = CgroupRoot(2, {"memory": v2, "pids": v2})
    else:
        return None
    try:  # prove it: create, limit and remove a probe group
        group = Cgroup.create(root, 64 << 20, 4)
        group.remove()
    except OSError:
        return None
    return root


def sweep(root: CgroupRoot) -> int:
    """Empty and remove the per-program groups of evalkit processes that are gone (killed
    before their own clean-up ran); how many. Never raises."""
    from evalkit.sandbox.cleanup import alive, owner_pid

    removed = 0
    for parent in dict.fromkeys(root.parents.values()):
        try:
            names = [e.name for e in os.scandir(parent) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for name in names:
            pid = owner_pid(name)
            if not name.startswith("evalkit-") or pid is None or pid == os.getpid() or alive(pid):
                continue
            group = Cgroup(root, {c: p / name for c, p in root.parents.items()})
            try:
                group.remove()
                removed += 1
            except OSError:
                pass
    return removed


def _own_groups() -> dict[str, str]:
    out = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def _v2_parent(path: str) -> Path | None:
    for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        parent = mount / path.lstrip("/")
        control = parent / "cgroup.subtree_control"
        if control.exists() and {"memory", "pids"} <= set(control.read_text().split()):
            return parent
    return None


@dataclass
class Cgroup:
    """One program's group (one folder per controller in v1, one folder in v2)."""

    root: CgroupRoot
    dirs: dict[str, Path]

    @classmethod
    def create(cls, root: CgroupRoot, memory_bytes: int, pids: int) -> "Cgroup":
        name = f"evalkit-{os.getpid()}-{next(_COUNTER)}"
        dirs = {c: p / name for c, p in root.parents.items()}
        made = []
        try:
            for d in dict.fromkeys(dirs.values()):
                d.mkdir()
                made.append(d)
            if root.version == 1:
                _write(dirs["memory"] / "memory.limit_in_bytes", memory_bytes)
                if (dirs["memory"] / "memory.memsw.limit_in_bytes").exists():
                    _write(dirs["memory"] / "memory.memsw.limit_in_bytes", memory_bytes)
            else:
                _write(dirs["memory"] / "memory.max", memory_bytes)
                _write(dirs["memory"] / "memory.swap.max", 0)
            _write(dirs["pids"] / "pids.max", pids)
        except OSError:
            for d in made:
                d.rmdir()
            raise
        return cls(root, dirs)

    @property
    def procs_files(self) -> list[str]:
        """Files a process writes its pid to, to join the group (children inherit it)."""
        return [str(d / "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def events(self) -> dict[str, int]:
        """Limit hits so far: ``oom_kill``, processes the kernel killed for memory. (Forks
        refused by ``pids.max`` need no count: RLIMIT_NPROC, a few lower, refuses first and
        the program's own BlockingIOError says so.)"""
        mem = self.dirs["memory"] / ("memory.oom_control" if self.root.version == 1 else "memory.events")
        return {"oom_kill": _field(mem, "oom_kill")}

    def kill_all(self, rounds: int = 50) -> None:
        """SIGKILL every process in the group until it is empty (a forking tree needs rounds)."""
        kill_file = self.dirs["pids"] / "cgroup.kill"
        for _ in range(rounds):
            pids = self.pids()
            if not pids:
                return
            if kill_file.exists():
                try:
                    _write(kill_file, 1)
                except OSError:
                    kill_file = Path("/nonexistent")  # fall back to killing pid by pid
            else:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.005)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.dirs["pids"] / "cgroup.procs").read_text().split()]
        except FileNotFoundError:  # already removed
            return []

    def remove(self) -> None:
        """Kill what is left in the group and delete it. Never raises (clean-up must not end a run)."""
        try:
            self.kill_all()
        except OSError:
            pass
        for d in dict.fromkeys(self.dirs.values()):
            for _ in range(100):  # rmdir fails while the last killed process is being reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _write(path: Path, value: int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _field(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        pass
    return 0
