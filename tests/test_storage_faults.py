"""A full disk and an unwritable output_dir end in one line, and the run resumes.

The faults are real: a size-limited tmpfs and a read-only tmpfs, mounted in a private
mount namespace (``unshare -m``; needs root or user namespaces, else the test skips).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[1]
ARGS = ["suite=smoke", "~suite.tasks.mmlu", "~suite.tasks.gsm8k", "suite.tasks.arc_easy.limit=3", "progress=false"]


def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "--map-root-user", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def _in_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PY": sys.executable, "T": str(tmp_path),
           "ARGS": " ".join(f"'{a}'" for a in ARGS)}
    return subprocess.run(["unshare", "-m", "--map-root-user", "sh", "-c", script], capture_output=True, text=True,
                          env=env, timeout=900, cwd=ROOT)


@pytest.fixture(autouse=True)
def _needs_mounts():
    if not _can_mount():
        pytest.skip("needs unshare -m with tmpfs mounts (root or user namespaces)")


def test_disk_full_is_one_line_and_the_run_resumes(tmp_path):
    # 96 KiB: config, lock and database fit; the write-ahead log fills up after a few answers.
    script = """
    set -u; D=$T/disk; mkdir -p $D
    mount -t tmpfs -o size=96k tmpfs $D
    eval "$PY -m evalkit.cli output_dir=$D $ARGS" >$T/out1 2>$T/err1; echo $? >$T/rc1
    mount -o remount,size=64m $D
    eval "$PY -m evalkit.cli output_dir=$D $ARGS" >$T/out2 2>$T/err2; echo $? >$T/rc2
    cp $D/*/results.json $T/results.json
    """
    proc = _in_namespace(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    err1 = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "2", err1[-2000:]
    assert "Traceback" not in err1
    last = err1.strip().splitlines()[-1]
    assert last.startswith("evalkit: error: no space left while writing") and "run the same command again" in last
    err2, out2 = (tmp_path / "err2").read_text(), (tmp_path / "out2").read_text()
    assert (tmp_path / "rc2").read_text().strip() == "0", err2[-2000:]
    assert "resuming:" in out2 + err2  # answers written before the disk filled were kept
    assert (tmp_path / "results.json").exists()


def test_unwritable_output_dir_is_one_line(tmp_path):
    script = """
    set -u; D=$T/ro; mkdir -p $D
    mount -t tmpfs -o ro,size=1m tmpfs $D
    eval "$PY -m evalkit.cli output_dir=$D/runs $ARGS" >$T/out1 2>$T/err1; echo $? >$T/rc1
    """
    proc = _in_namespace(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    err = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "2" and "Traceback" not in err, err[-2000:]
    (line,) = err.strip().splitlines()
    assert line.startswith(f"evalkit: error: cannot write {tmp_path}/ro/runs") and "Read-only file system" in line
