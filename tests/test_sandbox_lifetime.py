"""What a sandbox leaves behind, and when it refuses to start.

* ``kill -9`` of the harness while programs (and children that left their session) sleep:
  none survives it, under every mechanism this machine offers;
* leftovers of a killed run (host folders, cgroups) are swept by the next one;
* clean-up of a tree 1,200 folders deep (or without permissions) neither raises nor
  leaves it; a judge that fails on one item records it there and the run goes on;
* ``auto`` refuses to run code when no namespace mechanism works (made truly unavailable:
  the tools are off ``PATH``), naming the one setting that accepts resource limits only;
* rlimits mode, when named, cleans what the program left in /tmp, /var/tmp and /dev/shm.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from evalkit.errors import ConfigError
from evalkit.judges import run_judge
from evalkit.paths import ROOT
from evalkit.sandbox import SandboxSettings, choose, isolation, run_program
from evalkit.sandbox.cleanup import FOLDER_PREFIX, remove_tree, sweep_folders

FAST = {"cpu_seconds": 2, "wall_seconds": 5, "memory_mb": 256, "processes": 16, "disk_mb": 8}


def _mechanism(name: str) -> isolation.Isolation:
    """The named mechanism, or a skip saying why it does not work here."""
    python = "/usr/bin/python3" if name == "rlimits" and os.geteuid() == 0 else None
    if python and not os.access(python, os.X_OK):
        pytest.skip("rlimits as root needs /usr/bin/python3")
    try:
        return choose(SandboxSettings.from_config({"isolation": name, "python": python, "limits": FAST}))
    except ConfigError as e:
        pytest.skip(str(e))


def _marked(marker: str) -> list[int]:
    """Live processes whose command line carries ``marker``."""
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                    state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        out.append(int(entry.name))
            except OSError:
                pass
    return out


def _poll(fn, want, seconds: float):
    """fn() until want(result) or ``seconds`` pass; the last result."""
    deadline = time.monotonic() + seconds
    while True:
        got = fn()
        if want(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


# A program that leaves a sleeper in a session of its own (out of the process group),
# then sleeps itself: both carry the marker.
SLEEPER = """
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "$MARKER"])
    os._exit(0)
os.execv("/bin/sleep", ["sleep", "$MARKER"])
"""
HARNESS = """
import sys
from evalkit.sandbox import SandboxSettings, run_programs
s = SandboxSettings.from_config({"isolation": sys.argv[1], "python": sys.argv[2] or None, "workers": 2,
                                 "limits": {"wall_seconds": 600, "disk_mb": 8}})
run_programs([sys.argv[3], sys.argv[3] + "\\n# second copy"], s)
"""


@pytest.mark.parametrize("name", ["bwrap", "unshare", "rlimits"])
def test_kill_9_of_the_harness_leaves_no_program_running(name, tmp_path):
    iso = _mechanism(name)
    marker = f"{3000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, name, iso.python if name == "rlimits" else "",
                                SLEEPER.replace("$MARKER", marker)], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        running = _poll(lambda: _marked(marker), lambda p: len(p) >= 4, 60)
        assert len(running) >= 4, (harness.poll(), harness.stderr.read1().decode()[-2000:] if harness.poll() else "")
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
    left = _poll(lambda: _marked(marker), lambda p: not p, 5)
    for pid in left:  # never leave them to the next test, but fail
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"{len(left)} sandboxed processes outlived the harness ({name})"
    # Its host folders stay behind (nobody ran the clean-up); the next run's sweep takes them.
    mine = [p for p in Path("/tmp").glob(f"{FOLDER_PREFIX}{harness.pid}-*")]
    assert mine and sweep_folders() >= len(mine) and not any(p.exists() for p in mine)


def test_sweep_kills_and_removes_cgroups_of_a_dead_run():
    from evalkit.sandbox import cgroups

    root = cgroups.detect()
    if root is None:
        pytest.skip("no writable cgroup here (needs root on a cgroup-enabled host)")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    name = f"evalkit-{int(dead.stdout)}-0"
    group = cgroups.Cgroup(root, {c: p / name for c, p in root.parents.items()})
    for d in dict.fromkeys(group.dirs.values()):
        d.mkdir()
    sleeper = subprocess.Popen(["/bin/sh", "-c", 'for f; do echo $$ > "$f"; done; exec sleep 300', "sh",
                                *group.procs_files])
    try:
        assert _poll(group.pids, bool, 10), "the sleeper did not join the group"
        assert cgroups.sweep(root) >= 1
        assert sleeper.wait(10) == -signal.SIGKILL
    finally:
        sleeper.kill()
    assert not any(d.exists() for d in group.dirs.values())


def test_a_1200_deep_tree_without_permissions_is_removed_without_raising(tmp_path):
    base = tmp_path / "deep"
    base.mkdir()
    fd = os.open(base, os.O_RDONLY)
    for _ in range(1200):  # deeper than PATH_MAX allows as a path, and than Python's recursion limit
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    os.symlink(outside, "link", dir_fd=fd)  # removed, never followed
    os.close(fd)
    (base / "locked" / "inner").mkdir(parents=True)
    (base / "locked" / "inner" / "f").write_text("x")
    os.chmod(base / "locked" / "inner", 0)
    os.chmod(base / "locked", 0)
    assert remove_tree(base) is True
    assert not base.exists() and (outside / "keep").exists()
    assert remove_tree(base) is True  # already gone: nothing to do, no error


def test_a_program_making_a_deep_tree_is_judged_and_cleaned(tmp_path):
    iso = _mechanism("rlimits")
    deep = "import os\nfor _ in range(1200):\n    os.mkdir('d')\n    os.chdir('d')\nassert 0\n"
    settings = SandboxSettings.from_config({"limits": FAST})
    before = set(Path("/tmp").glob(f"{FOLDER_PREFIX}{os.getpid()}-*"))
    ex = run_program(deep, iso, settings.limits)
    assert (ex.outcome, ex.detail) == ("failed", "AssertionError"), ex.stderr
    assert set(Path("/tmp").glob(f"{FOLDER_PREFIX}{os.getpid()}-*")) == before


def test_rlimits_cleans_what_the_program_left_in_shared_tmp():
    iso = _mechanism("rlimits")
    if not iso.as_root:
        pytest.skip("without a uid of its own, rlimits cannot tell the program's files apart (it says so)")
    marker = f"evalkit-test-{uuid.uuid4().hex}"
    prog = textwrap.dedent(f"""
        import os, tempfile
        for d in ("/tmp", "/var/tmp", "/dev/shm"):
            os.makedirs(f"{{d}}/{marker}/sub")
            open(f"{{d}}/{marker}/sub/f", "w").close()
        assert tempfile.gettempdir() not in ("/tmp", "/var/tmp"), tempfile.gettempdir()
    """)
    ex = run_program(prog, iso, SandboxSettings.from_config({"limits": FAST}).limits)
    assert ex.outcome == "passed", ex.stderr  # its own TMPDIR is a private folder
    assert [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.lexists(f"{d}/{marker}")] == []


def test_auto_refuses_without_namespaces_and_names_the_setting(monkeypatch, tmp_path):
    isolation._choose.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path))  # bwrap and unshare truly unavailable: not on PATH
    try:
        with pytest.raises(ConfigError) as e:
            choose(SandboxSettings.from_config({"limits": FAST}))
    finally:
        isolation._choose.cache_clear()
    msg = str(e.value)
    assert "\n" not in msg and "will not run model-written code" in msg
    assert "sandbox.isolation=rlimits" in msg and "network" in msg and "world-readable" in msg
    assert "bwrap: bwrap is not installed" in msg


def test_a_judge_failing_on_one_item_records_it_and_the_run_goes_on():
    from evalkit.judges import JUDGES, judge

    @judge("test_fragile")
    def fragile(records, args, run_cfg):
        for r in records:
            if r["outputs"] == ["boom"]:
                raise RuntimeError("scorer fell over\non two lines")
            r["score"] = len(r["outputs"][0])
        return {"name": "test_fragile"}

    try:
        recs = [{"id": i, "outputs": [t]} for i, t in enumerate(["ab", "boom", "abc"])]
        info = run_judge({"name": "test_fragile"}, recs, {})
    finally:
        JUDGES.pop("test_fragile")
    assert [r.get("score") for r in recs] == [2, None, 3] and info["errors"] == 1
    assert recs[1]["judge_error"] == {"judge": "test_fragile", "outcome": "error",
                                      "message": "RuntimeError: scorer fell over on two lines"}
