"""The attack set: hostile programs that must fail safely while the host stays intact.

Every attack runs under each isolation mechanism this machine offers (bwrap, unshare,
rlimits-only; a missing one skips with its reason), all in one parallel batch per
mechanism, as a real run would meet them. Each attack's outcome is asserted, and so is
the host after the batch: no file written or deleted outside the sandbox, no secret
read, no connection accepted, no process left behind, and the harness still running
programs. ``rlimits`` has no filesystem or network isolation by design (it is used only
with a loud warning), so the attacks only namespaces stop are skipped for it.
"""

from __future__ import annotations

import json
import os
import socket
import string
import time
import uuid
from pathlib import Path

import pytest

from evalkit.errors import ConfigError
from evalkit.paths import ROOT
from evalkit.sandbox import Limits, SandboxSettings, choose, run_program, run_programs

LIMITS = {"cpu_seconds": 1, "wall_seconds": 3, "memory_mb": 256, "processes": 16, "file_size_mb": 1,
          "open_files": 64, "disk_mb": 8}
ISOLATED = ("bwrap", "unshare")  # mechanisms with namespaces (filesystem view, network)
GOOD = "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\n"
# Each child stays under the per-process limit; together they exceed the tree's budget. Run
# on its own with a long wall limit: filling memory is slow on a loaded machine.
ALLOCATE_IN_CHILDREN = """
import os, time
kids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = b"x" * (120 << 20)
        time.sleep(0.5)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
"""

ATTACKS = {
    # Children exec into a marked sleeper so the host can look for survivors.
    "fork_bomb": """
import os, sys
while True:
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-S", "-c", "import time; time.sleep(60)", "$MARKER"])
""",
    "fork_bomb_spinning": """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
""",
    "allocate_10gb": "block = bytearray(10 * 1024 ** 3)\n",
    "infinite_loop": "while True:\n    pass\n",
    "sleep_forever": "import time\ntime.sleep(10_000)\n",
    "busy_child_left_behind": """
import os, sys
if os.fork() == 0:
    os.setsid()
    os.execv(sys.executable, [sys.executable, "-S", "-c", "while True: pass", "$MARKER"])
""",
    "stderr_flood": "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)\n",
    "write_outside": """
import sys
written = []
for path in ["$HOST/pwned.txt", "$TMP_FILE", "$HOME/$MARKER", "$PROJECT/$MARKER", "/$MARKER"]:
    try:
        with open(path, "w") as f:
            f.write("pwned")
        written.append(path)
    except OSError:
        pass
print("written inside the sandbox:", written, file=sys.stderr)
""",
    "read_secrets": """
import json, os, sys
seen = {}
for path in ["$HOME", "$HOME/.ssh", "$HOST", "$PROJECT"]:
    try:
        seen[path] = sorted(os.listdir(path))
    except OSError as e:
        seen[path] = type(e).__name__
for path in ["$PROJECT/pyproject.toml", "$HOST/secret.txt"]:
    try:
        seen[path] = open(path).read()[:200]  # enough to show it was read; the stored stderr is a bounded tail
    except OSError as e:
        seen[path] = type(e).__name__
print("SEEN " + json.dumps(seen), file=sys.stderr)
""",
    "socket_localhost": "import socket\nsocket.create_connection(('127.0.0.1', $PORT), timeout=2)\n",
    "socket_outside": "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\n",
    "kill_parent": """
import os, signal, sys
for pid in (os.getppid(), $HARNESS_PID, -1):
    try:
        os.kill(pid, signal.SIGKILL)
        print("SIGKILL sent to", pid, file=sys.stderr)
    except OSError as e:
        print("SIGKILL to", pid, "refused:", type(e).__name__, file=sys.stderr)
""",
    # As root the sandbox depends on the uid drop: the program must hold no capability to undo it.
    "regain_root": """
import os, sys
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print("STATUS", status["Uid"].split()[0], status["CapEff"].strip(), status["NoNewPrivs"].strip(), file=sys.stderr)
os.setuid(0)
""",
    "delete_harness_files": """
import os, shutil
for name in os.listdir("."):
    os.remove(name)
os.remove("$HARNESS_CWD/canary.txt")
shutil.rmtree("$HARNESS_CWD")
""",
}


def _settings(mechanism: str) -> SandboxSettings:
    cfg = {"allow_code_execution": True, "isolation": mechanism, "workers": 2, "limits": LIMITS}
    if mechanism == "rlimits":
        if os.geteuid() != 0:
            pytest.skip("rlimits-only mode as a normal user protects nothing of that user's (hence its warning)")
        # As root, rlimits runs programs as an unprivileged uid, which needs a world-readable interpreter.
        if not os.access("/usr/bin/python3", os.X_OK):
            pytest.skip("rlimits as root needs /usr/bin/python3")
        cfg["python"] = "/usr/bin/python3"
    return SandboxSettings.from_config(cfg)


@pytest.fixture(scope="module", params=["bwrap", "unshare", "rlimits"])
def batch(request, tmp_path_factory):
    """Run the whole attack set (plus two good programs) under one mechanism; record the host after."""
    mechanism = request.param
    settings = _settings(mechanism)
    try:
        iso = choose(settings)
    except ConfigError as e:
        pytest.skip(f"{mechanism} is not usable on this machine: {e}")
    host = tmp_path_factory.mktemp(f"host-{mechanism}")
    (host / "secret.txt").write_text("s3cret")
    harness_cwd = host / "harness_cwd"
    harness_cwd.mkdir()
    (harness_cwd / "canary.txt").write_text("keep me")
    marker = f"evalkit-attack-{uuid.uuid4().hex}"
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    ctx = {"HOME": str(Path.home()), "PROJECT": str(ROOT), "HOST": str(host), "HARNESS_CWD": str(harness_cwd),
           "HARNESS_PID": os.getpid(), "MARKER": marker, "TMP_FILE": f"/tmp/{marker}",
           "PORT": server.getsockname()[1]}
    programs = {name: string.Template(src).substitute(ctx) for name, src in ATTACKS.items()}
    old_cwd = os.getcwd()
    os.chdir(harness_cwd)
    try:
        t0 = time.perf_counter()
        results, stats = run_programs([GOOD, *programs.values(), GOOD], settings, iso)
        seconds = time.perf_counter() - t0
        after = run_program(GOOD, iso, settings.limits)
    finally:
        os.chdir(old_cwd)
    try:
        server.accept()
        accepted = True
    except BlockingIOError:
        accepted = False
    server.close()
    yield {
        "mechanism": mechanism, "settings": settings, "iso": iso, "ctx": ctx, "host": host, "stats": stats,
        "results": dict(zip(programs, results[1:-1])), "good": [results[0], results[-1], after],
        "seconds": seconds, "accepted": accepted, "survivors": _processes_with(marker),
        "uid_processes": _uid_processes(stats["uids"]),
    }
    for leftover in (Path(ctx["TMP_FILE"]), Path.home() / marker, ROOT / marker, Path("/") / marker):
        leftover.unlink(missing_ok=True)


def _processes_with(marker: str) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def _uid_processes(uids: list[int]) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
                if os.stat(entry.path).st_uid in uids and state != "Z":
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def _needs_namespaces(batch) -> None:
    if batch["mechanism"] not in ISOLATED:
        pytest.skip("rlimits-only mode has no filesystem or network isolation (it runs only with a loud warning)")


def test_host_intact_and_run_goes_on(batch):
    assert [g.outcome for g in batch["good"]] == ["passed"] * 3, [g.stderr for g in batch["good"]]
    assert batch["survivors"] == [], "processes left behind by sandboxed programs"
    assert batch["uid_processes"] == [], "processes still running as a sandbox uid"
    # Every attack was stopped by its limits: the batch ends in bounded time.
    assert batch["seconds"] < 20 * LIMITS["wall_seconds"]
    assert sum(batch["stats"]["outcomes"].values()) == len(ATTACKS) + 2


def _result(batch, name):
    return batch["results"][name]


def test_fork_bomb(batch):
    r = _result(batch, "fork_bomb")
    assert (r.outcome, r.detail) == ("killed_for_limit", f"processes ({LIMITS['processes']})"), r.stderr
    assert batch["survivors"] == []


def test_spinning_fork_bomb(batch):
    r = _result(batch, "fork_bomb_spinning")
    assert r.outcome in ("timeout", "killed_for_limit"), (r.outcome, r.detail)
    assert r.seconds < LIMITS["wall_seconds"] + 5


def test_allocating_10gb(batch):
    r = _result(batch, "allocate_10gb")
    assert (r.outcome, r.detail) == ("killed_for_limit", f"memory ({LIMITS['memory_mb']} MB address space)")


def test_allocating_across_children(batch):
    if batch["iso"].cgroup_root is None:
        pytest.skip("no writable cgroup here: memory is limited per process only")
    limits = Limits(**{**LIMITS, "wall_seconds": 30})
    r = run_program(ALLOCATE_IN_CHILDREN, batch["iso"], limits)
    assert r.outcome == "killed_for_limit" and "cgroup" in r.detail, (r.outcome, r.detail, r.stderr)


def test_infinite_loop(batch):
    r = _result(batch, "infinite_loop")
    # CPU limit normally; on a very loaded machine the wall clock may come first.
    assert r.outcome in ("killed_for_limit", "timeout"), (r.outcome, r.detail)
    assert r.detail.startswith(("cpu time", "wall clock")), r.detail


def test_sleep_forever(batch):
    r = _result(batch, "sleep_forever")
    assert r.outcome == "timeout"
    assert LIMITS["wall_seconds"] <= r.seconds < LIMITS["wall_seconds"] + 5


def test_busy_child_left_behind(batch):
    r = _result(batch, "busy_child_left_behind")
    assert r.outcome == "passed", r.stderr  # the program itself ended well...
    assert batch["survivors"] == []  # ...and its escaped, spinning child was killed


def test_stderr_flood(batch):
    r = _result(batch, "stderr_flood")
    assert (r.outcome, r.detail) == ("killed_for_limit", f"file size ({LIMITS['file_size_mb']} MB)")
    assert len(r.stderr) <= batch["settings"].stderr_chars


def test_writing_outside_the_sandbox(batch):
    ctx = batch["ctx"]
    protected = [Path(ctx["HOST"]) / "pwned.txt", Path(ctx["HOME"]) / ctx["MARKER"], Path(ctx["PROJECT"]) / ctx["MARKER"],
                 Path("/") / ctx["MARKER"]]
    if batch["mechanism"] in ISOLATED:
        protected.append(Path(ctx["TMP_FILE"]))  # the sandbox's /tmp is its own tmpfs
    assert [p for p in protected if p.exists()] == []
    assert _result(batch, "write_outside").outcome == "passed"  # it ran, and its writes went nowhere


def test_reading_home_ssh_and_project(batch):
    ctx = batch["ctx"]
    # Without a sandbox all of this is readable: the test would see it.
    assert Path(ctx["HOST"], "secret.txt").read_text() == "s3cret" and Path(ctx["PROJECT"], "pyproject.toml").exists()
    r = _result(batch, "read_secrets")
    seen = json.loads(next((ln for ln in r.stderr.splitlines() if ln.startswith("SEEN ")), "SEEN {}")[5:] or "{}")
    assert seen, (r.outcome, r.detail, r.stderr[-1500:])
    home = ctx["HOME"]
    # The interpreter may live under $HOME (pyenv): only the folders on the way to it are visible.
    skeleton = {Path(p).relative_to(home).parts[0] for p in batch["iso"].ro_paths if p.startswith(home + "/")}
    assert seen[home] in ("FileNotFoundError", "PermissionError") or set(seen[home]) <= skeleton, seen[home]
    assert seen[f"{home}/.ssh"] in ("FileNotFoundError", "PermissionError")
    assert seen[ctx["HOST"]] in ("FileNotFoundError", "PermissionError")
    assert seen[f"{ctx['HOST']}/secret.txt"] in ("FileNotFoundError", "PermissionError")
    if batch["mechanism"] in ISOLATED:  # the project is world-readable: only a private view hides it
        assert seen[ctx["PROJECT"]] == "FileNotFoundError"
        assert seen[f"{ctx['PROJECT']}/pyproject.toml"] == "FileNotFoundError"


def test_socket_to_localhost(batch):
    _needs_namespaces(batch)
    r = _result(batch, "socket_localhost")
    assert r.outcome == "failed" and r.detail in ("ConnectionRefusedError", "OSError"), (r.detail, r.stderr)
    assert batch["accepted"] is False  # the host's listening socket saw nothing


def test_socket_to_outside(batch):
    _needs_namespaces(batch)
    r = _result(batch, "socket_outside")
    assert r.outcome == "failed" and "Network is unreachable" in r.stderr, r.stderr


def test_killing_the_parent(batch):
    r = _result(batch, "kill_parent")
    assert r.outcome == "passed", r.stderr  # every kill was refused or hit nothing of the host's...
    assert f"SIGKILL sent to {os.getpid()}" not in r.stderr
    if batch["mechanism"] in ISOLATED:  # ...and in a pid namespace the harness does not even exist
        assert f"SIGKILL to {os.getpid()} refused: ProcessLookupError" in r.stderr, r.stderr
    else:  # a different uid may not signal it
        assert f"SIGKILL to {os.getpid()} refused: PermissionError" in r.stderr, r.stderr
    assert batch["good"][-1].passed  # the harness is alive and still running programs


def test_regaining_root(batch):
    r = _result(batch, "regain_root")
    assert (r.outcome, r.detail) == ("failed", "PermissionError"), r.stderr
    uid, cap_eff, no_new_privs = next(ln for ln in r.stderr.splitlines() if ln.startswith("STATUS ")).split()[1:]
    assert int(cap_eff, 16) == 0 and no_new_privs == "1"
    assert uid != "0" and (not batch["iso"].as_root or int(uid) in batch["stats"]["uids"])


def test_deleting_harness_files(batch):
    r = _result(batch, "delete_harness_files")
    assert r.outcome == "failed" and r.detail in ("FileNotFoundError", "PermissionError"), (r.detail, r.stderr)
    assert (Path(batch["ctx"]["HARNESS_CWD"]) / "canary.txt").read_text() == "keep me"


def test_sandbox_python_is_isolated_mode(batch):
    """The interpreter ignores PYTHON* variables and user site-packages (``-I``)."""
    r = run_program("import sys\nassert sys.flags.isolated == 1 and sys.flags.no_site == 1\n", batch["iso"],
                    batch["settings"].limits)
    assert r.passed, r.stderr
