"""One writer per run folder: a second process is told who holds it (or waits); a dead
holder's lock is taken over; the cache never keeps a write transaction open."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.backends.requests import LoglikelihoodResult
from evalkit.runner.cache import RequestCache
from evalkit.runner.lock import RunFolderBusy, RunLock

_HOLD = ("import sys, time\nfrom pathlib import Path\nfrom evalkit.runner.lock import RunLock\n"
         "lock = RunLock(Path(sys.argv[1])).acquire()\nprint('held', flush=True)\n"
         "try:\n    time.sleep(float(sys.argv[2]))\nexcept KeyboardInterrupt:\n    pass\n")


def _holder(folder: Path, seconds: float = 120) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_process_is_told_who_holds_the_folder(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunFolderBusy) as e:
            RunLock(tmp_path).acquire()
        msg = str(e.value)
        assert f"process {holder.pid} on {socket.gethostname()} since " in msg and "wait_for_lock=true" in msg
        assert "\n" not in msg
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path) as lock:
        assert f'"pid": {os.getpid()}' in lock.path.read_text()


def test_ctrl_c_releases_the_lock_and_waiters_get_it(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGINT)  # the waiter below only returns once the holder let go
    with RunLock(tmp_path, wait=True, poll_s=0.05):
        holder.wait(timeout=60)
        assert f"\"pid\": {os.getpid()}" in (tmp_path / ".lock").read_text()


def test_cli_second_run_on_a_held_folder_exits_2_in_one_line(tmp_path):
    run_dir = tmp_path / "runs" / "busy"
    run_dir.mkdir(parents=True)
    holder = _holder(run_dir)
    try:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        out = subprocess.run([sys.executable, "-m", "evalkit.cli", f"output_dir={tmp_path / 'runs'}", "run_name=busy",
                              "suite=smoke", "report=false", "progress=false"],
                             capture_output=True, text=True, env=env, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"evalkit: error: {run_dir} is in use by process {holder.pid}")
    assert "Traceback" not in out.stderr


def test_cache_holds_no_transaction_between_answers(tmp_path):
    cache = RequestCache(tmp_path / "requests.sqlite")
    cache.put("k1", "loglikelihood", LoglikelihoodResult(-1.0, True, 1))
    assert not cache.in_transaction
    # Another connection can write at once (timeout 0): nothing is held while the model works.
    other = sqlite3.connect(tmp_path / "requests.sqlite", timeout=0)
    other.execute("INSERT INTO answers VALUES ('k2', 'loglikelihood', '{\"logprob\": 0, \"is_greedy\": true, \"n_tokens\": 1}')")
    other.commit()
    other.close()
    assert set(cache.get_many(["k1", "k2"])) == {"k1", "k2"}
    cache.close()
