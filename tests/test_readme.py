"""Every command of the README's *Running* block, run as written (plus ``limit=1
max_gen_toks=8`` where it runs a model, as the README says), must exit 0 -- except the
gated ``compare``, whose exit status must be the verdict it wrote (0 only when every row
passes: one item per task cannot show that, so there it is 1 with a written summary).

Placeholders are filled with what the earlier commands made: ``runs/<run1>`` and
``runs/<run2>`` (``<base>``/``<new>``) are the two folders of the ``--multirun`` line,
``/some/dir`` is the embedded model's materialised folder, ``myconf/`` holds the README's
own suite file. Commands that need ``../shared/data`` skip when it is absent.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.paths import ROOT
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.model
_TINY = ["limit=1", "max_gen_toks=8", "progress=false"]
_NO_MODEL = ("--help", "tasks", "report", "compare")  # first words of commands that load no model


def readme_commands() -> list[str]:
    """The ``evalkit`` lines of the README's Running block, comments removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Running\n\n```sh\n(.*?)```", text, re.S).group(1)
    lines = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [shlex.join(words) for words in lines if words and words[0] == "evalkit"]


def readme_suite_file() -> tuple[str, str]:
    """(path, text) of the README's example suite file."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```yaml\n# (myconf/[^\n]+)\n(.*?)```", text, re.S)
    return m.group(1), m.group(2)


def test_readme_lists_the_commands_this_test_fills_in():
    cmds = readme_commands()
    assert any(c.startswith("evalkit --multirun") for c in cmds)
    assert any(" report " in f" {c} " for c in cmds) and any(" compare " in f" {c} " for c in cmds)


def test_every_readme_command_exits_0(tmp_path):
    from evalkit.backends.hf.loading import embedded_model_dir

    rel, text = readme_suite_file()
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    runs: list[str] = []
    for cmd in readme_commands():
        if "../shared/data" in cmd and not SHARED_DATA.is_dir():
            continue
        words = shlex.split(cmd.replace("../shared/data", str(SHARED_DATA)).replace("/some/dir", str(embedded_model_dir())))
        if "<" in cmd:
            names = {"<run1>": 0, "<base>": 0, "<run2>": 1, "<new>": 1}
            words = [re.sub(r"runs/(<\w+>)", lambda m: runs[names[m.group(1)]], w) for w in words]
        args = words[1:] if words[1:2] and words[1] in _NO_MODEL else [*words[1:], *_TINY]
        before = set(_run_folders(tmp_path))
        proc = subprocess.run([sys.executable, "-m", "evalkit.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        if words[1:2] == ["compare"] and any(w.startswith("gate=") for w in words):
            written = re.search(r"^wrote (.+comparison\.json)$", proc.stderr, re.M)
            assert written and proc.returncode in (0, 1), f"{cmd}\n{proc.stderr[-2000:]}"
            passed = json.loads(Path(written.group(1)).read_text(encoding="utf-8"))["passed"]
            assert proc.returncode == (0 if passed else 1), (cmd, passed, proc.returncode)
            continue
        assert proc.returncode == 0, f"{cmd}\n{proc.stderr[-2000:]}"
        if words[1:2] == ["--multirun"]:
            # An earlier line may already have made one of the two folders (resumed, not new).
            runs = [str(Path(p).relative_to(tmp_path)) if Path(p).is_absolute() else p
                    for p in re.findall(r"^run folder: (.+)$", proc.stdout, re.M)]
            assert len(runs) == 2 and set(runs) <= set(_run_folders(tmp_path)), (runs, before)


def _run_folders(root: Path) -> list[str]:
    return [str(p.parent.relative_to(root)) for p in (root / "runs").glob("*/results.json")]
