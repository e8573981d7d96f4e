"""Sandbox settings: the ``sandbox`` block of the run config, checked into typed values.

Every bad value ends in one ``ConfigError`` line that names the key (``sandbox.limits.cpu_seconds``)
and what it accepts, before any model work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from evalkit.errors import ConfigError

ISOLATIONS = ("auto", "bwrap", "unshare", "rlimits")
FLAG = "sandbox.allow_code_execution"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program (and, where cgroups are usable, of its whole process tree)."""

    cpu_seconds: float = 3.0  # RLIMIT_CPU per process: SIGXCPU, then SIGKILL one second later
    wall_seconds: float = 10.0  # the harness kills the whole sandbox after this
    memory_mb: int = 1024  # RLIMIT_AS per process; cgroup memory limit of the tree when available
    processes: int = 32  # RLIMIT_NPROC (per sandbox uid / user namespace); cgroup pids.max
    file_size_mb: int = 16  # RLIMIT_FSIZE: largest file a program may write (stderr included)
    open_files: int = 256  # RLIMIT_NOFILE
    disk_mb: int = 64  # size of the sandbox's private /work and /tmp (tmpfs)

    def rlimits(self) -> dict[str, tuple[int, int]]:
        """``resource`` limit name -> (soft, hard), as the in-sandbox bootstrap applies them."""
        cpu = max(1, int(round(self.cpu_seconds)))
        mem = self.memory_mb << 20
        return {
            "RLIMIT_CPU": (cpu, cpu + 1),
            "RLIMIT_AS": (mem, mem),
            "RLIMIT_NPROC": (self.processes, self.processes),
            "RLIMIT_FSIZE": (self.file_size_mb << 20, self.file_size_mb << 20),
            "RLIMIT_NOFILE": (self.open_files, self.open_files),
            "RLIMIT_CORE": (0, 0),  # SIGXCPU/SIGSEGV would otherwise dump cores into the work dir
        }


@dataclass(frozen=True)
class SandboxSettings:
    """The resolved ``sandbox`` config."""

    allow_code_execution: bool = False
    isolation: str = "auto"
    workers: int = field(default_factory=lambda: _cores())
    python: str | None = None  # interpreter for programs; None = the base interpreter running evalkit
    uid_base: int = 61000  # as root, programs run as uids leased from here up (one per worker)
    stderr_chars: int = 2000  # stderr tail kept per program in the records
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> "SandboxSettings":
        """Check and type the ``sandbox`` block (None or missing keys mean the defaults)."""
        cfg = dict(cfg or {})
        limits_cfg = dict(cfg.pop("limits", None) or {})
        known = {f for f in cls.__dataclass_fields__ if f != "limits"}
        _unknown("sandbox", set(cfg) - known, sorted(known | {"limits"}))
        _unknown("sandbox.limits", set(limits_cfg) - set(Limits.__dataclass_fields__), sorted(Limits.__dataclass_fields__))
        allow = cfg.get("allow_code_execution", False)
        if not isinstance(allow, bool):
            raise ConfigError(f"{FLAG} must be true or false (got {allow!r})")
        isolation = str(cfg.get("isolation") or "auto")
        if isolation not in ISOLATIONS:
            raise ConfigError(f"sandbox.isolation must be one of {', '.join(ISOLATIONS)} (got {isolation!r})")
        workers = cfg.get("workers")
        workers = _cores() if workers is None else _positive("sandbox.workers", workers, int)
        python = cfg.get("python")
        if python is not None and not (isinstance(python, str) and os.path.isabs(python) and os.access(python, os.X_OK)):
            raise ConfigError(f"sandbox.python must be the absolute path of a Python executable or null (got {python!r})")
        limits = Limits(**{
            k: _positive(f"sandbox.limits.{k}", v, float if k.endswith("seconds") else int)
            for k, v in limits_cfg.items() if v is not None
        })
        return cls(
            allow_code_execution=allow,
            isolation=isolation,
            workers=workers,
            python=python,
            uid_base=_positive("sandbox.uid_base", cfg.get("uid_base", 61000), int),
            stderr_chars=_positive("sandbox.stderr_chars", cfg.get("stderr_chars", 2000), int),
            limits=limits,
        )


def _cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _unknown(where: str, keys: set[str], valid: list[str]) -> None:
    if keys:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(keys))}; valid keys: {', '.join(valid)}")


def _positive(key: str, value: Any, kind: type) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        what = "a positive integer" if kind is int else "a positive number"
        raise ConfigError(f"{key} must be {what} (got {value!r})")
    return kind(value)
