"""The command line: one-line errors for config mistakes, and --multirun."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evalkit.cli import main


@pytest.mark.parametrize(
    "args, expected",
    [
        (["model=nope"], "model=nope: no such model config; choose one of: hf, openai_compatible, smollm2_135m_instruct"),
        (["suite=nope"], "no such suite config; choose one of: "),
        (["model.foo=1"], "unknown config key 'model.foo'; valid keys under 'model': add_bos"),
        (["foo=1"], "unknown config key 'foo'; valid keys at the top level: data_root"),
        (["model=hf"], "model.pretrained is required"),
        (["model=hf", "model.pretrained=/no/such/dir"], "model.pretrained=/no/such/dir: no such file or folder"),
        (["limit=abc"], "limit must be a positive integer or null (got 'abc')"),
        (["model.dtype=fp8"], "model.dtype must be one of auto, float32, bfloat16, float16 (got 'fp8')"),
        (["model.chat_template=maybe"], "model.chat_template must be true or false"),
        (["model.draft_tokens=-1"], "model.draft_tokens must be an integer from 0 (off) to 16 (got -1)"),
        (["model.draft_tokens=yes"], "model.draft_tokens must be an integer from 0 (off) to 16 (got 'yes')"),
        (["suite.tasks.nosuch.limit=3"], "suite.tasks.nosuch: unknown task; available: "),
        (["suite.tasks.mmlu.bogus=3"], "task mmlu: unknown key 'bogus'"),
        (["data_root=/no/such/mirror"], "data_root=/no/such/mirror: no such folder"),
        (["--multirun", "model.dtype=float32,fp9"], "model.dtype must be one of"),
    ],
)
def test_config_mistakes_end_in_one_line(args, expected, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("evalkit: error: ")
    assert expected in err


def test_error_exit_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "model.foo=1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.model
def test_multirun_gives_one_run_folder_per_setting(tmp_path):
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "evalkit.cli", "--multirun", "suite=smoke", "~suite.tasks.mmlu", "~suite.tasks.gsm8k",
           "suite.tasks.arc_easy.limit=2", "model.chat_template=false,true", f"output_dir={out}", "progress=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 2
    chats = sorted(json.loads((r / "results.json").read_text())["prompting"]["chat_template"] for r in runs)
    assert chats == [False, True]
    assert all((r / "card.html").exists() for r in runs)
    assert "card: " in proc.stdout
