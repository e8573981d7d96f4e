"""Bad data and damaged run folders end in one line naming file, line and field; the
HTML report shows control and bidirectional characters escaped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.errors import DataError
from evalkit.paths import SAMPLES_DIR
from evalkit.tasks import build_samples, load_task
from tests.test_compare_fixtures import gen_record, make_run, mc_record

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(SAMPLES_DIR / "boolq", dst / "boolq")
    return dst


def _error(root: Path, task: str = "boolq") -> str:
    with pytest.raises(DataError) as e:
        build_samples(load_task(task), root)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_invalid_utf8_names_file_and_line(root):
    path = root / "boolq/dev.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"?", b"\xff?", 1) if b"?" in lines[1] else lines[1][:-1] + b"\xff}"
    path.write_bytes(b"\n".join(lines))
    assert "boolq/dev.jsonl:2: invalid UTF-8" in _error(root)


def test_utf16_file_is_named_with_the_fix(root):
    path = root / "boolq/dev.jsonl"
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    msg = _error(root)
    assert "boolq/dev.jsonl: the file is UTF-16" in msg and "iconv" in msg


@pytest.mark.parametrize("content", ["", "  \n\n \t\n"])
def test_empty_or_blank_file_is_an_error_not_n0(root, content):
    (root / "boolq/dev.jsonl").write_text(content)
    assert "boolq/dev.jsonl: no rows" in _error(root)


def test_null_field_is_named_never_rendered_as_None(root):
    path = root / "boolq/dev.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[1]["question"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    msg = _error(root)
    assert "boolq/dev.jsonl:2: field 'question'" in msg and "null or missing" in msg


def test_over_long_field_is_named(root):
    path = root / "boolq/dev.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[2]["passage"] = "x" * 1_100_000
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    msg = _error(root)
    assert "boolq/dev.jsonl:3: field 'passage'" in msg and "1,100,000 characters" in msg and "max_field_chars" in msg


def test_compare_on_a_cut_off_samples_file_is_one_line(tmp_path):
    a = make_run(tmp_path, "base", {"arc_easy": {"records": [mc_record(i, 1) for i in range(6)]}})
    b = make_run(tmp_path, "new", {"arc_easy": {"records": [mc_record(i, i % 2) for i in range(6)]}})
    samples = b / "samples" / "arc_easy.jsonl"
    samples.write_bytes(samples.read_bytes()[:-40])  # a crash mid-line
    before = samples.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "evalkit.cli", "compare", str(a), str(b), "-o", str(tmp_path / "cmp")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"evalkit: error: {samples}:6: line is cut off or not JSON") and "rerun" in line
    assert samples.read_bytes() == before  # nothing was changed: the run can be rerun to rewrite it


def test_report_escapes_control_and_bidi_characters(tmp_path):
    from evalkit.report.build import render_report
    from evalkit.rundir import load_results

    hostile = "ok\x00\x1b[31mred\u202eevil\u2066x\x7f"
    run = make_run(tmp_path, "r", {"toxicity": {"records": [gen_record(0, 0.1, hostile)], "metric": "toxicity",
                                                "higher_is_better": False}})
    html = render_report([load_results(run)])
    for raw in ("\x00", "\x1b", "\u202e", "\u2066", "\x7f"):
        assert raw not in html
    assert r"ok\x00\x1b[31mred\u202eevil\u2066x\x7f" in html
